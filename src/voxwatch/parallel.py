"""Work on many files at once on threads: the models (onnxruntime) and numpy's heavy loops release the GIL, so
analyses of separate files run side by side on one set of loaded models."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def each(work: Callable[[Item], Result], items: Sequence[Item], workers: int) -> Iterator[tuple[Item, Result]]:
    """``(item, work(item))`` for every item, on up to ``workers`` threads, as each finishes. The first error is
    raised; work not yet started is then dropped."""
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield item, work(item)
        return
    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        futures = {pool.submit(work, item): item for item in items}
        try:
            for done in as_completed(futures):
                yield futures[done], done.result()
        finally:
            for future in futures:
                future.cancel()
