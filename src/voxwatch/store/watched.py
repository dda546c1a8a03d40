"""The store's watched streams: what a service watches, and where each recording can resume after a restart."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from ..records import Quiet, _JsonRecord
from .core import StoreCore


@dataclass(frozen=True)
class WatchedStream(_JsonRecord):
    """A stream a service watches: enough to start it again, from ``position_s`` for a recording."""

    LIVE_CLOCK_STEP_S: ClassVar[float] = 10.0  # a live stream's position is stored this often; it resumes this late

    source: str
    stream_id: str
    kind: str  # file or url
    speakers: list[str] | None
    realtime: bool
    reconnects: int
    added_at: str
    added_by: str
    position_s: float = 0.0
    last_heard: dict[str, float] | None = None
    url: str | None = None  # a live stream's URL with its secrets, which only reopening it reads (``source`` is without)

    @property
    def location(self) -> str:
        """What to open to watch it again."""
        return self.url or self.source

    @property
    def resume(self) -> Quiet | None:
        """Where it resumes: a recording at ``position_s``, a live stream (what is live now) with its clock going on
        from past the last time it could have reached; None: from the start."""
        if not self.position_s:
            return None
        late = self.LIVE_CLOCK_STEP_S if self.kind == "url" else 0.0
        return Quiet(self.source, self.position_s + late, dict(self.last_heard or {}))


class WatchedStreams(StoreCore):
    """Table ``watched_streams``."""

    def watch_stream(self, stream: WatchedStream) -> None:
        """Keep a stream being watched (replacing an earlier one on the same source, with its position)."""
        speakers = None if stream.speakers is None else json.dumps(stream.speakers)
        with self._tx() as db:
            db.execute(
                "INSERT INTO watched_streams (source, stream_id, kind, speakers, realtime, reconnects, position_s,"
                " last_heard, added_at, added_by, url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source)"
                " DO UPDATE SET stream_id = excluded.stream_id, kind = excluded.kind, speakers = excluded.speakers,"
                " realtime = excluded.realtime, reconnects = excluded.reconnects, position_s = excluded.position_s,"
                " last_heard = excluded.last_heard, added_at = excluded.added_at, added_by = excluded.added_by,"
                " url = excluded.url",
                (
                    stream.source,
                    stream.stream_id,
                    stream.kind,
                    speakers,
                    int(stream.realtime),
                    stream.reconnects,
                    stream.position_s,
                    json.dumps(stream.last_heard or {}),
                    stream.added_at,
                    stream.added_by,
                    stream.url,
                ),
            )

    def stream_positions(self, points: list[Quiet]) -> None:
        """Watched streams resume from these points from now on (one transaction)."""
        if not points:
            return
        with self._tx() as db:
            db.executemany(
                "UPDATE watched_streams SET position_s = ?, last_heard = ? WHERE source = ?",
                [(p.at_s, json.dumps(p.last_heard), p.source) for p in points],
            )

    def stream_speakers(self, source: str, speakers: list[str] | None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE watched_streams SET speakers = ? WHERE source = ?",
                (None if speakers is None else json.dumps(speakers), source),
            )

    def _forget_in_watched(self, db: Any, name: str) -> None:
        """Inside :meth:`Store.forget`: the voice leaves every watched stream's voices and last-heard times."""
        for source, speakers, heard in db.execute("SELECT source, speakers, last_heard FROM watched_streams").fetchall():
            kept = None if speakers is None else [s for s in json.loads(speakers) if s != name]
            times = {k: v for k, v in json.loads(heard).items() if k != name}
            db.execute(
                "UPDATE watched_streams SET speakers = ?, last_heard = ? WHERE source = ?",
                (None if kept is None else json.dumps(kept), json.dumps(times), source),
            )

    def unwatch_stream(self, source: str) -> None:
        """The stream was stopped or has ended: it is not resumed."""
        with self._tx() as db:
            db.execute("DELETE FROM watched_streams WHERE source = ?", (source,))

    def watched_streams(self) -> list[WatchedStream]:
        rows = self._query(
            "SELECT source, stream_id, kind, speakers, realtime, reconnects, added_at, added_by, position_s, last_heard,"
            " url FROM watched_streams ORDER BY added_at, source"
        )
        return [
            WatchedStream(
                r[0], r[1], r[2], None if r[3] is None else json.loads(r[3]), bool(r[4]), *r[5:9], json.loads(r[9]), r[10]
            )
            for r in rows
        ]
