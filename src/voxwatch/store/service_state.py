"""The store's service state: API tokens (hashes only), webhooks, and search jobs with their hits."""

from __future__ import annotations

import json

from ..errors import NotFound, UsageError
from ..records import Detection
from .core import StoreCore, now
from .dialect import Connection


class ServiceState(StoreCore):
    """Tables ``tokens``, ``webhooks``, ``search_jobs`` and ``search_hits``."""

    def add_token(self, name: str, sha256: str, actor: str, role: str, expires_at: str | None) -> None:
        """Keep an API token's hash (never the token) under a unique name, with its role and expiry."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise UsageError(f"a token named {name!r} exists already; pick another name")
            db.execute(
                "INSERT INTO tokens (name, sha256, created_at, created_by, role, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (name, sha256, now(), actor, role, expires_at),
            )
            self._audit(db, actor, "token-create", name, json.dumps({"role": role, "expires_at": expires_at}))

    def token(self, sha256: str) -> tuple[str, str, str | None] | None:
        """``(name, role, expires_at)`` of the token whose hash is ``sha256``."""
        rows = self._query("SELECT name, role, expires_at FROM tokens WHERE sha256 = ?", (sha256,))
        return rows[0] if rows else None

    def tokens(self) -> list[dict[str, str | None]]:
        columns = ("name", "role", "created_at", "created_by", "expires_at")
        return [dict(zip(columns, r)) for r in self._query(f"SELECT {', '.join(columns)} FROM tokens ORDER BY id")]

    def add_webhook(self, url: str, secret: str | None, speakers: list[str] | None, actor: str) -> int:
        """Register a webhook; it receives the alerts committed from now on (earlier ones are marked skipped)."""
        with self._tx() as db:
            (webhook_id,) = db.execute(
                "INSERT INTO webhooks (url, secret, speakers, created_at, created_by) VALUES (?, ?, ?, ?, ?) RETURNING id",
                (url, secret, None if speakers is None else json.dumps(speakers), now(), actor),
            ).fetchone()
            db.execute(
                "INSERT INTO deliveries (alert_id, webhook_id, status) SELECT alert_id, ?, 'skipped' FROM alerts", (webhook_id,)
            )
            self._audit(db, actor, "webhook-add", str(webhook_id), url)
        return int(webhook_id)

    def webhooks(self) -> list[tuple[int, str, str | None, list[str] | None, str]]:
        """``(id, url, secret, speakers, created_at)`` of every webhook, oldest first."""
        rows = self._query("SELECT id, url, secret, speakers, created_at FROM webhooks ORDER BY id")
        return [(i, u, s, None if sp is None else json.loads(sp), t) for i, u, s, sp, t in rows]

    def remove_webhook(self, webhook_id: int, actor: str) -> None:
        with self._tx() as db:
            if not db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount:
                raise NotFound(f"no webhook with id {webhook_id}")
            self._audit(db, actor, "webhook-remove", str(webhook_id), "")

    # -- search jobs ------------------------------------------------------------------------------------------------

    def add_search_job(self, job_id: str, actor: str, paths: list[str], speakers: list[str] | None, total: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO search_jobs (id, actor, paths, speakers, status, total, created_at) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (job_id, actor, json.dumps(paths), None if speakers is None else json.dumps(speakers), total, now()),
            )

    def search_progress(self, job_id: str, done: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE search_jobs SET done = ? WHERE id = ?", (done, job_id))

    def finish_search_job(
        self, job_id: str, status: str, recordings: list[dict[str, object]], detections: list[Detection], errors: list[str]
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE search_jobs SET status = ?, done = total, recordings = ?, errors = ?, finished_at = ? WHERE id = ?",
                (status, json.dumps(recordings), json.dumps(errors), now(), job_id),
            )
            db.executemany(
                "INSERT INTO search_hits (job_id, source, speaker, start_s, end_s, score, llr) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(job_id, d.source, d.speaker, d.start_s, d.end_s, d.score, d.llr) for d in detections],
            )

    def interrupt_search_jobs(self) -> int:
        """Mark jobs left running by a previous process as failed."""
        with self._tx() as db:
            return db.execute(
                "UPDATE search_jobs SET status = 'failed', errors = ?, finished_at = ? WHERE status = 'running'",
                (json.dumps(["interrupted: the service stopped before the search finished"]), now()),
            ).rowcount

    def search_job(self, job_id: str) -> dict[str, object] | None:
        rows = self._query(
            "SELECT id, actor, paths, speakers, status, done, total, recordings, errors, created_at, finished_at FROM search_jobs WHERE id = ?",
            (job_id,),
        )
        if not rows:
            return None
        i, actor, paths, speakers, status, done, total, recordings, errors, created, finished = rows[0]
        hits = self._query(
            "SELECT source, speaker, start_s, end_s, score, llr FROM search_hits WHERE job_id = ? ORDER BY source, start_s", (i,)
        )
        return {
            "id": i,
            "actor": actor,
            "paths": json.loads(paths),
            "speakers": None if speakers is None else json.loads(speakers),
            "status": status,
            "done": done,
            "total": total,
            "recordings": json.loads(recordings) if recordings else [],
            "errors": json.loads(errors) if errors else [],
            "detections": [Detection(*h).to_json() for h in hits],
            "created_at": created,
            "finished_at": finished,
        }

    def search_jobs(self, limit: int = 50) -> list[dict[str, object]]:
        rows = self._query(
            "SELECT id, actor, status, done, total, created_at, finished_at FROM search_jobs ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return [dict(zip(("id", "actor", "status", "done", "total", "created_at", "finished_at"), r)) for r in rows]

    def _forget_in_service(self, db: Connection, name: str) -> int:
        """Within a forget transaction: delete the voice's search hits and the search jobs that asked for it by name,
        and take the name out of webhook speaker filters (a filter left empty matches nothing, never everything).
        Returns how many search hits were deleted."""
        hits = db.execute("DELETE FROM search_hits WHERE speaker = ?", (name,)).rowcount
        sql = self._dialect
        db.execute(
            "DELETE FROM search_jobs WHERE speakers IS NOT NULL"
            f" AND EXISTS (SELECT 1 FROM {sql.json_values('search_jobs.speakers')} WHERE value = ?)",
            (name,),
        )
        listed = sql.json_values("webhooks.speakers")
        db.execute(
            f"UPDATE webhooks SET speakers = (SELECT {sql.json_array('value')} FROM {listed} WHERE value != ?)"
            f" WHERE speakers IS NOT NULL AND EXISTS (SELECT 1 FROM {listed} WHERE value = ?)",
            (name, name),
        )
        return int(hits)
