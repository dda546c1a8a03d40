"""The store: one database (a SQLite file or a PostgreSQL server) of voices, the archive index, live results and
service state, in focused parts.

Schema migrations live in :mod:`voxwatch.store.core` and nowhere else; each part (:mod:`~voxwatch.store.voices`,
:mod:`~voxwatch.store.archive`, :mod:`~voxwatch.store.alerts`, :mod:`~voxwatch.store.service_state`) owns its
tables, and :meth:`Store.forget` has every part drop a voice's traces in one transaction.
"""

from __future__ import annotations

import json

from .alerts import Alerts
from .archive import Archive, IndexedRecording
from .core import MIGRATIONS, StoreCore, now
from .service_state import ServiceState
from .voices import Voices
from .watched import WatchedStream, WatchedStreams

__all__ = ["MIGRATIONS", "IndexedRecording", "Store", "StoreCore", "WatchedStream", "now"]


class Store(Voices, Archive, Alerts, ServiceState, WatchedStreams):
    """One database, SQLite (WAL) or PostgreSQL. Every public method is one transaction; one writer connection,
    read-only readers."""

    def forget(self, name: str, actor: str) -> dict[str, int]:
        """Delete every trace of a voice, in one transaction: enrollments, voiceprints, detections, alerts with their
        audio snippets, transcripts (and their words in the full-text index), acknowledgements and webhook
        deliveries, search hits, and its name in the audit log, search jobs and webhook filters. Returns how many
        enrollments, detections, snippets, transcripts, search hits and alerts went."""
        self._require(name)
        with self._tx() as db:
            speaker_id, enrollments = self._forget_voice(db, name)
            dropped = self._forget_alerts(db, name)
            search_hits = self._forget_in_service(db, name)
            self._forget_in_watched(db, name)
            counts = {
                "enrollments": enrollments,
                "detections": dropped["detections"],
                "snippets": dropped["snippets"],
                "transcripts": dropped["transcripts"],
                "search_hits": search_hits,
                "alerts": dropped["alerts"],
            }
            alias = f"forgotten-voice-{speaker_id}"
            self._forget_in_audit(db, name, alias)
            self._audit(db, actor, "forget", alias, json.dumps(counts))
        return counts
