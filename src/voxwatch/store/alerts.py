"""The store's live results: detections, the alert outbox (acknowledgements, snippets) and per-webhook deliveries."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ..errors import NotFound
from ..records import Alert, AlertTranscript, Detection
from .core import StoreCore, now
from .dialect import Connection

# Tables with one row per alert, dropped with their alert when it ages out (:meth:`Alerts.purge_before`).
PER_ALERT_TABLES = ("snippets", "acknowledgements", "deliveries", "transcripts")


class Alerts(StoreCore):
    """Tables ``detections``, ``alerts``, ``acknowledgements``, ``snippets``, ``transcripts`` (with their FTS5 index
    ``transcript_words``) and ``deliveries``."""

    def add_detections(self, detections: list[Detection]) -> None:
        """Keep detections; a turn detected again (a stream resumed from an earlier point) is kept once."""
        if not detections:
            return
        with self._tx() as db:
            db.executemany(
                "INSERT INTO detections (source, speaker, start_s, end_s, score, llr, created_at) SELECT ?, ?, ?, ?, ?, ?, ?"
                " WHERE NOT EXISTS (SELECT 1 FROM detections WHERE source = ? AND speaker = ? AND start_s = ?)",
                [
                    (d.source, d.speaker, d.start_s, d.end_s, d.score, d.llr, now(), d.source, d.speaker, d.start_s)
                    for d in detections
                ],
            )

    def set_language(self, source: str, speaker: str, start_s: float, language: str, probability: float) -> None:
        """Note the language spoken in the detected turn of ``speaker`` that began at ``start_s`` in ``source``."""
        with self._tx() as db:
            db.execute(
                "UPDATE detections SET language = ?, language_probability = ? WHERE source = ? AND speaker = ? AND start_s = ?",
                (language, probability, source, speaker, start_s),
            )

    def detection_languages(self, speaker: str | None = None) -> list[tuple[Detection, str, float]]:
        """Detections in order with the language of their turn (``""`` and 0 while, or when, not identified)."""
        sql = "SELECT source, speaker, start_s, end_s, score, llr, language, language_probability FROM detections"
        rows = self._query(sql + (" WHERE speaker = ?" if speaker else "") + " ORDER BY id", (speaker,) if speaker else ())
        return [(Detection(*r[:6]), r[6], r[7]) for r in rows]

    def detections(self, speaker: str | None = None) -> list[Detection]:
        sql = "SELECT source, speaker, start_s, end_s, score, llr FROM detections"
        rows = self._query(
            sql + " WHERE speaker = ? ORDER BY id" if speaker else sql + " ORDER BY id", (speaker,) if speaker else ()
        )
        return [Detection(*r) for r in rows]

    def add_alert(self, alert: Alert) -> bool:
        """Commit an alert to the outbox; sinks deliver it afterwards. False (and nothing stored) when its voice has
        been forgotten meanwhile, or when an alert with its id is stored already (its turn processed again: a stream
        resumed from an earlier point)."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM speakers WHERE name = ?", (alert.speaker,)).fetchone() is None:
                return False
            added = db.execute(
                "INSERT INTO alerts (alert_id, source, speaker, wall_time, payload) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (alert_id) DO NOTHING",
                (alert.alert_id, alert.source, alert.speaker, alert.wall_time, json.dumps(alert.to_json())),
            )
        return added.rowcount == 1

    def mark_delivered(self, alert_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE alerts SET delivered_at = ? WHERE alert_id = ? AND delivered_at IS NULL", (now(), alert_id))

    def alerts(self, speaker: str | None = None, undelivered: bool = False) -> list[Alert]:
        clauses, args = [], []
        if speaker:
            clauses.append("speaker = ?")
            args.append(speaker)
        if undelivered:
            clauses.append("delivered_at IS NULL")
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return [
            Alert.from_json(json.loads(p))
            for (p,) in self._query(f"SELECT payload FROM alerts{where} ORDER BY rowid", tuple(args))
        ]

    def acknowledge(self, alert_id: str, actor: str) -> tuple[str, str]:
        """Acknowledge an alert once; returns ``(acknowledged_at, actor)`` of the first acknowledgement."""
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone():
                raise NotFound(f"no alert with id {alert_id!r}")
            row = db.execute("SELECT acknowledged_at, actor FROM acknowledgements WHERE alert_id = ?", (alert_id,)).fetchone()
            if row:
                return row[0], row[1]
            at = now()
            db.execute("INSERT INTO acknowledgements (alert_id, acknowledged_at, actor) VALUES (?, ?, ?)", (alert_id, at, actor))
            self._audit(db, actor, "acknowledge", alert_id, "")
        return at, actor

    def add_snippet(self, alert_id: str, speaker: str, media_type: str, start_s: float, end_s: float, audio: bytes) -> bool:
        """Keep (or replace with a longer one) the audio of an alert's turn; False when the alert no longer exists."""
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone():
                return False
            db.execute("DELETE FROM snippets WHERE alert_id = ?", (alert_id,))
            db.execute(
                "INSERT INTO snippets (alert_id, speaker, media_type, start_s, end_s, audio) VALUES (?, ?, ?, ?, ?, ?)",
                (alert_id, speaker, media_type, start_s, end_s, audio),
            )
        return True

    def add_transcript(self, transcript: AlertTranscript, replace: bool = True) -> bool:
        """Commit an alert's transcript (one per alert, replacing the one it had unless ``replace`` is false); False
        (nothing stored) when the alert no longer exists, or has a transcript already and ``replace`` is false."""
        t = transcript
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (t.alert_id,)).fetchone():
                return False
            if replace:
                db.execute("DELETE FROM transcripts WHERE alert_id = ?", (t.alert_id,))  # its words leave the index too
            added = db.execute(
                "INSERT INTO transcripts (alert_id, speaker, status, language, text, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO NOTHING",
                (t.alert_id, t.speaker, t.status, t.language, t.text, json.dumps(t.to_json()), now()),
            )
        return added.rowcount == 1

    def transcripts(self, speaker: str | None = None) -> list[AlertTranscript]:
        """Stored transcripts in commit order."""
        sql = "SELECT payload FROM transcripts" + (" WHERE speaker = ?" if speaker else "") + " ORDER BY rowid"
        return [AlertTranscript.from_json(json.loads(p)) for (p,) in self._query(sql, (speaker,) if speaker else ())]

    def snippet(self, alert_id: str) -> tuple[str, float, float, bytes] | None:
        """``(media_type, start_s, end_s, audio)`` of an alert's snippet."""
        rows = self._query("SELECT media_type, start_s, end_s, audio FROM snippets WHERE alert_id = ?", (alert_id,))
        return rows[0] if rows else None

    def alert_records(
        self,
        speaker: str | None = None,
        source: str | None = None,
        since: str | None = None,
        until: str | None = None,
        alert_id: str | None = None,
        limit: int = 500,
        text: str | None = None,
        language: str | None = None,
    ) -> list[dict[str, object]]:
        """Alerts newest first with their acknowledgement, snippet span and transcript; ``since``/``until`` compare ISO
        wall times, ``text`` is a full-text query on the transcripts (words; "a phrase"; prefix*), ``language`` an
        ISO 639-1 code."""
        clauses, args = [], []
        for column, value in (
            ("a.speaker = ?", speaker),
            ("a.source = ?", source),
            ("a.wall_time >= ?", since),
            ("a.wall_time <= ?", until),
            ("a.alert_id = ?", alert_id),
            ("tr.language = ?", language),
        ):
            if value is not None:
                clauses.append(column)
                args.append(value)
        words = self._dialect.text_match("tr", text)
        if words is not None:
            clauses.append(words[0])
            args.append(words[1])
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        rows = self._query(
            "SELECT a.payload, k.acknowledged_at, k.actor, s.start_s, s.end_s, tr.payload FROM alerts a"
            " LEFT JOIN acknowledgements k ON k.alert_id = a.alert_id LEFT JOIN snippets s ON s.alert_id = a.alert_id"
            " LEFT JOIN transcripts tr ON tr.alert_id = a.alert_id"
            f"{where} ORDER BY a.rowid DESC LIMIT ?",
            (*args, limit),
        )
        return [
            {
                **json.loads(p),
                "acknowledged_at": at,
                "acknowledged_by": by,
                "audio": None if s0 is None else {"start_s": s0, "end_s": s1},
                "transcript": None if tr is None else json.loads(tr),
            }
            for p, at, by, s0, s1, tr in rows
        ]

    # -- webhook deliveries -----------------------------------------------------------------------------------------

    def queue_deliveries(self, webhook_id: int) -> int:
        """Give every alert and every transcript without a delivery row for this webhook one: pending, or filtered
        out by its speakers (a transcript goes where its alert went: skipped or filtered with it)."""
        with self._tx() as db:
            alerts = db.execute(
                "INSERT INTO deliveries (alert_id, webhook_id, status)"
                " SELECT a.alert_id, w.id, CASE WHEN w.speakers IS NULL"
                f" OR a.speaker IN (SELECT value FROM {self._dialect.json_values('w.speakers')})"
                " THEN 'pending' ELSE 'filtered' END FROM alerts a JOIN webhooks w ON w.id = ?"
                " WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = w.id AND d.alert_id = a.alert_id)"
                " ORDER BY a.rowid",
                (webhook_id,),
            ).rowcount
            transcripts = db.execute(
                "INSERT INTO deliveries (alert_id, event, webhook_id, status)"
                " SELECT t.alert_id, 'transcript', d.webhook_id,"
                " CASE WHEN d.status IN ('skipped', 'filtered') THEN d.status ELSE 'pending' END"
                " FROM transcripts t JOIN deliveries d ON d.alert_id = t.alert_id AND d.webhook_id = ? AND d.event = 'alert'"
                " WHERE NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.webhook_id = d.webhook_id AND e.alert_id = t.alert_id"
                " AND e.event = 'transcript') ORDER BY t.rowid",
                (webhook_id,),
            ).rowcount
            return alerts + transcripts

    def next_delivery(self, webhook_id: int) -> tuple[str, str, str, int, float] | None:
        """The oldest pending delivery (in commit order; an alert before its transcript):
        ``(alert_id, event, payload, attempts, next_attempt_at)``, ``event`` being ``alert`` or ``transcript``."""
        rows = self._query(
            "SELECT d.alert_id, d.event, CASE d.event WHEN 'transcript' THEN t.payload ELSE a.payload END, d.attempts,"
            " d.next_attempt_at FROM deliveries d JOIN alerts a ON a.alert_id = d.alert_id"
            " LEFT JOIN transcripts t ON t.alert_id = d.alert_id"
            " WHERE d.webhook_id = ? AND d.status = 'pending' ORDER BY d.rowid LIMIT 1",
            (webhook_id,),
        )
        return rows[0] if rows else None

    def delivery_done(self, webhook_id: int, alert_id: str, event: str = "alert") -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL"
                " WHERE webhook_id = ? AND alert_id = ? AND event = ?",
                (now(), webhook_id, alert_id, event),
            )

    def delivery_failed(self, webhook_id: int, alert_id: str, error: str, next_attempt_at: float, event: str = "alert") -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
                " WHERE webhook_id = ? AND alert_id = ? AND event = ?",
                (error[:500], next_attempt_at, webhook_id, alert_id, event),
            )

    def delivery_counts(self, webhook_id: int) -> dict[str, object]:
        """Per-status counts of one webhook's deliveries, and the last error of the pending head."""
        counts: dict[str, object] = {
            s: n
            for s, n in self._query("SELECT status, COUNT(*) FROM deliveries WHERE webhook_id = ? GROUP BY status", (webhook_id,))
        }
        head = self._query(
            "SELECT attempts, last_error, next_attempt_at FROM deliveries"
            " WHERE webhook_id = ? AND status = 'pending' ORDER BY rowid LIMIT 1",
            (webhook_id,),
        )
        if head:
            counts["head_attempts"], counts["last_error"], counts["next_attempt_at"] = head[0]
        return counts

    def purge_before(self, cutoff: datetime, actor: str) -> dict[str, int]:
        """Delete, in one transaction, the alerts raised and the detections stored before ``cutoff`` (UTC), with
        every per-alert row (:data:`PER_ALERT_TABLES`); the audit log keeps that (and how much) was purged,
        when anything was.
        Returns how many rows of each table went."""
        stamp = cutoff.astimezone(UTC).isoformat(timespec="milliseconds")
        old = "SELECT alert_id FROM alerts WHERE wall_time < ?"
        with self._tx() as db:
            counts = {t: db.execute(f"DELETE FROM {t} WHERE alert_id IN ({old})", (stamp,)).rowcount for t in PER_ALERT_TABLES}
            counts["alerts"] = db.execute("DELETE FROM alerts WHERE wall_time < ?", (stamp,)).rowcount
            counts["detections"] = db.execute(
                "DELETE FROM detections WHERE created_at < ?", (cutoff.astimezone(UTC).isoformat(timespec="seconds"),)
            ).rowcount
            if any(counts.values()):
                self._audit(db, actor, "purge", f"before {stamp}", json.dumps(counts))
        return counts

    def _forget_alerts(self, db: Connection, name: str) -> dict[str, int]:
        """Within a forget transaction: delete the voice's detections, snippets, transcripts and alerts
        (acknowledgements and deliveries cascade), and rewrite the full-text index so that none of its words remain
        in it; returns how many of each."""
        counts = {
            "detections": db.execute("DELETE FROM detections WHERE speaker = ?", (name,)).rowcount,
            "snippets": db.execute("DELETE FROM snippets WHERE speaker = ?", (name,)).rowcount,
            "transcripts": db.execute("DELETE FROM transcripts WHERE speaker = ?", (name,)).rowcount,
            "alerts": db.execute("DELETE FROM alerts WHERE speaker = ?", (name,)).rowcount,
        }
        self._dialect.scrub_text_index(db)
        return counts
