"""BLAS thread limits, scoped with threadpoolctl while voxwatch computes (never set for the whole process at import):
voxwatch's matrices are small and its parallelism comes from batching, and oversubscribed BLAS threads make them
many times slower."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from threadpoolctl import threadpool_limits

BLAS_THREADS = 1

P = ParamSpec("P")
R = TypeVar("R")


def limit_blas() -> threadpool_limits:
    """Limit BLAS to :data:`BLAS_THREADS` until the returned limiter exits or ``restore_original_limits()``."""
    return threadpool_limits(limits=BLAS_THREADS, user_api="blas")


def blas_limited(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with BLAS limited (the previous limits come back when it returns)."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with limit_blas():
            return fn(*args, **kwargs)

    return run
