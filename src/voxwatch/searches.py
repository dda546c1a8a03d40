"""Search jobs of the service: archive searches that run in the background and report progress on the live feed."""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AudioError, NotFound, UsageError, VoxwatchError
from .records import FileDone

if TYPE_CHECKING:
    from .service import Service

log = logging.getLogger(__name__)


class Searches:
    """Starts search jobs (one thread each) for a service, keeps their progress and results in its store."""

    def __init__(self, service: Service):
        self.service = service

    def start(self, paths: list[str], speakers: list[str] | None, actor: str) -> dict[str, Any]:
        self.service.require_speakers(speakers)
        if not self.service.store.speakers():
            raise UsageError("no voices are enrolled; enroll one first")
        files = self.service.audio_files(paths)
        if not files:
            raise AudioError("no audio files found under the given paths")
        job_id = uuid.uuid4().hex[:16]
        self.service.store.add_search_job(job_id, actor, [str(p) for p in paths], speakers, len(files))
        self.service.store.audit(actor, "search-submit", ",".join(speakers or ["*"]), f"job {job_id}: {len(files)} files")
        threading.Thread(target=self._run, args=(job_id, files, speakers, actor), name=f"search:{job_id}", daemon=True).start()
        return self.job(job_id)

    def _run(self, job_id: str, files: list[Path], speakers: list[str] | None, actor: str) -> None:
        engine = self.service.engine_as(actor)

        def progress(file: FileDone) -> None:
            self.service.store.search_progress(job_id, file.done)
            self.service.feed.publish("search", {"id": job_id, "done": file.done, "total": file.total})

        try:
            names = [str(f) for f in files]
            result = engine.search(names, speakers, progress=progress)
            entries, found, errors = result.recordings, result.detections, result.errors
            recordings = [
                {
                    "path": e.path,
                    "duration_s": round(e.duration_s, 3),
                    "speech_s": round(e.speech_s, 2),
                    "segments": [[round(float(s[0]), 3), round(float(s[1]), 3)] for s in e.spans],
                }
                for e in entries
            ]
            self.service.store.finish_search_job(job_id, "done", recordings, found, errors)
        except VoxwatchError as exc:
            self.service.store.finish_search_job(job_id, "failed", [], [], [str(exc)])
        except Exception as exc:
            log.exception("search job %s failed", job_id)
            self.service.store.finish_search_job(job_id, "failed", [], [], [f"{type(exc).__name__}: {exc}"])
        self.service.feed.publish("search", {"id": job_id, "done": len(files), "total": len(files), "finished": True})

    def job(self, job_id: str) -> dict[str, Any]:
        job = self.service.store.search_job(job_id)
        if job is None:
            raise NotFound(f"no search job with id {job_id!r}")
        total = int(job["total"]) or 1  # type: ignore[call-overload]
        job["progress"] = round(int(job["done"]) / total, 3)  # type: ignore[call-overload]
        by_file: dict[str, list[dict[str, Any]]] = {}
        for d in job.pop("detections"):  # type: ignore[attr-defined]
            by_file.setdefault(d["source"], []).append(d)
        for rec in job["recordings"]:  # type: ignore[attr-defined]
            rec["detections"] = by_file.get(rec["path"], [])
        return job
