"""Retention: a thread that purges alerts (with their snippets, acknowledgements and deliveries) and detections
older than ``retain_days``, at start and then every ``interval_s``; each purge is written to the audit log."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Self

from .errors import UsageError
from .store import Store

log = logging.getLogger(__name__)

ACTOR = "retention"


class Retention:
    """Purges ``store`` of what is older than ``days`` on a schedule; :meth:`start` and :meth:`stop` bracket it."""

    def __init__(self, store: Store, days: float, interval_s: float = 3600.0):
        if not 0 < days <= 36500:
            raise UsageError(f"retain_days={days}: give a number of days above 0 (up to 36500)")
        if interval_s <= 0:
            raise UsageError(f"interval_s={interval_s} must be positive")
        self.store = store
        self.days = days
        self.interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def purge(self) -> dict[str, int]:
        """Purge now; returns how many rows of each table went."""
        counts = self.store.purge_before(datetime.now(UTC) - timedelta(days=self.days), ACTOR)
        if any(counts.values()):
            log.info("retention (%g days): purged %s", self.days, counts)
        return counts

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                self.purge()
            except Exception:  # the store misbehaved: log it and try again at the next interval
                log.exception("retention: purge failed")

    def start(self) -> None:
        """Purge now (a failure here is raised), then every ``interval_s`` on a thread."""
        self.purge()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
