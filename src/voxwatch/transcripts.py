"""Transcripts of alerted turns, and the language of every detected turn, on their own thread, so that speech
recognition never slows spotting.

A watch tells :class:`AlertTranscripts` of each alert it has published and of each turn that ended; when an alerted
turn ends, its audio (its first ``max_s`` seconds) is cut at once and queued. One worker thread transcribes the
queue in order. The queue is bounded: when it is full the oldest waiting turn is dropped, counted, and published as
a ``dropped`` transcript with the reason; alerts themselves never wait for transcription and are never dropped.
Detected turns that raised no alert (a voice heard again within its cooldown) only have their language identified,
from a second bounded queue that the worker serves when no transcript is waiting (drops counted too).

Spotting comes first: the worker runs at a lower scheduling priority (its model's threads, created on it, too),
is busy at most ``cpu_share`` of the time, and starts nothing while ``yield_to()`` says the watch is falling behind;
turns keep queueing meanwhile, and the oldest are dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from .asr import Transcriber
from .audio import RATE_HZ
from .errors import UsageError
from .records import Alert, AlertTranscript, Detection, TimedText

log = logging.getLogger(__name__)

# (source, start_s, end_s) → (actual start_s, samples): what is still kept of that stretch of a stream
AudioCutter = Callable[[str, float, float], tuple[float, np.ndarray]]
LANGUAGE_S = 10.0  # the first seconds of a turn its language is identified from
WARN_EVERY_S = 60.0  # at most one warning a minute about dropped turns


@dataclass(frozen=True)
class TranscriptOptions:
    """How much of an alerted turn is transcribed, how many turns may wait, and how long a finished watch waits."""

    max_s: float = 30.0  # the first this-many seconds of a turn are transcribed (Whisper's window), or its last if
    # its beginning is no longer kept
    depth: int = 8  # turns waiting for the worker; beyond that the oldest is dropped
    drain_s: float = 120.0  # at the end of a watch, how long to wait for the transcripts still due
    language: str | None = None  # transcribe in this language (ISO 639-1) instead of the detected one
    yield_lag_s: float = 0.75  # no transcription starts while a live stream's processing trails its audio by more,
    yield_hold_s: float = 2.0  # nor this long after it last did
    cpu_share: float = 0.5  # after each turn the worker rests, so that it is busy at most this share of the time

    @property
    def keep_s(self) -> float:
        """How much of each stream's latest audio must be kept: a turn of up to ``max_s``, the pause that ends it,
        and what a stream read as fast as it decodes may be ahead of its processing (the multiplexer's and the
        watch's queues: about 30 s)."""
        return self.max_s + 35.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_s <= 120 or not 1 <= self.depth <= 1000 or self.drain_s < 0 or not 0 < self.cpu_share <= 1:
            raise UsageError(
                "need 1 <= max_s <= 120, 1 <= depth <= 1000, drain_s >= 0 and 0 < cpu_share <= 1 for alert transcripts"
            )


@dataclass(frozen=True)
class Transcription:
    """What a watch needs to transcribe its alerted turns: the model, where the streams' audio is kept, and options."""

    transcriber: Transcriber
    audio: AudioCutter
    options: TranscriptOptions = field(default_factory=TranscriptOptions)


@dataclass
class _Job:
    alert: Alert
    start_s: float
    end_s: float
    samples: np.ndarray


class AlertTranscripts:
    """Transcribes alerted turns when they end, on one worker thread with a bounded queue, and hands every outcome
    (done, dropped or failed) to ``publish`` (called on the worker thread, or on the caller's for drops)."""

    def __init__(
        self,
        transcriber: Transcriber,
        audio: AudioCutter,
        publish: Callable[[AlertTranscript], None],
        options: TranscriptOptions | None = None,
        identified: Callable[[Detection, str, float], None] | None = None,
        yield_to: Callable[[], bool] | None = None,
    ):
        """``identified`` hears the language (and its probability) of each detected turn that raised no alert;
        while ``yield_to()`` is true (spotting is falling behind), no transcription starts."""
        self.transcriber = transcriber
        self.audio = audio
        self.publish = publish
        self.identified = identified
        self.yield_to = yield_to
        self.options = options or TranscriptOptions()
        self.dropped = 0  # turns dropped because the queue was full
        self.done = 0
        self.languages_dropped = 0
        self._warned = -WARN_EVERY_S
        self._open: dict[tuple[str, str, float], Alert] = {}  # alerted turns not yet ended
        self._queue: deque[_Job] = deque()
        self._languages: deque[tuple[Detection, np.ndarray]] = deque()
        self._busy = False
        self._closed = False
        self._draining = False  # the watch has ended: no more resting between turns
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="transcribe", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Turns waiting or being transcribed."""
        with self._cond:
            return len(self._queue) + len(self._languages) + self._busy

    def alert(self, alert: Alert) -> None:
        """An alert was published: its turn is transcribed when it ends."""
        self._open[(alert.source, alert.speaker, alert.segment_start_s)] = alert

    def turn_ended(self, detection: Detection) -> None:
        """A turn ended: cut its audio now (the stream's buffer moves on) and queue it: for a transcript if it was
        alerted, else for its language."""
        alert = self._open.pop((detection.source, detection.speaker, detection.start_s), None)
        if alert is None:
            self._queue_language(detection)
            return
        d, longest = detection, self.options.max_s
        start, samples = self.audio(d.source, d.start_s, min(d.end_s, d.start_s + longest))
        if len(samples) < RATE_HZ // 4:  # a very long turn: its beginning is gone, so its last seconds
            start, samples = self.audio(d.source, max(d.start_s, d.end_s - longest), d.end_s)
        job = _Job(alert, start, start + len(samples) / RATE_HZ, samples)
        if len(samples) < RATE_HZ // 4:
            self._give(job, "failed", "the turn's audio was no longer kept")
            return
        with self._cond:
            dropped = self._queue.popleft() if len(self._queue) >= self.options.depth else None
            self._queue.append(job)
            if dropped is not None:
                self.dropped += 1
            self._cond.notify()
        if dropped is not None:
            if time.monotonic() - self._warned >= WARN_EVERY_S:
                self._warned = time.monotonic()
                log.warning("transcription cannot keep up: %d turn(s) dropped so far (the oldest waiting)", self.dropped)
            self._give(dropped, "dropped", f"transcription fell behind: more than {self.options.depth} turns waiting")

    def _queue_language(self, detection: Detection) -> None:
        if self.identified is None:
            return
        _, samples = self.audio(detection.source, detection.start_s, min(detection.end_s, detection.start_s + LANGUAGE_S))
        if len(samples) < RATE_HZ // 4:
            return
        with self._cond:
            if len(self._languages) >= self.options.depth:
                self._languages.popleft()
                self.languages_dropped += 1
            self._languages.append((detection, samples))
            self._cond.notify()

    def stream_ended(self, source: str) -> None:
        """A stream ended: alerted turns of it that never ended get no transcript."""
        for key in [k for k in self._open if k[0] == source]:
            alert = self._open.pop(key)
            self._give(_Job(alert, alert.segment_start_s, alert.stream_time_s, np.zeros(0)), "failed", "the stream ended first")

    def close(self, wait: bool = True) -> None:
        """Wait (up to ``drain_s``, if ``wait``) for the queued turns, then stop; turns still waiting are published
        as dropped."""
        deadline = time.monotonic() + (self.options.drain_s if wait else 0.0)
        with self._cond:
            self._draining = True
            self._cond.notify_all()
            while (self._queue or self._languages or self._busy) and self._thread.is_alive() and time.monotonic() < deadline:
                self._cond.wait(0.2)
            left, self._closed = list(self._queue), True
            self.languages_dropped += len(self._languages)
            self._queue.clear()
            self._languages.clear()
            self._cond.notify_all()
        for job in left:
            self._give(job, "dropped", "the watch ended before it was transcribed")

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._cond:
                while not self._closed and (
                    not (self._queue or self._languages) or (self.yield_to is not None and self.yield_to())
                ):
                    self._cond.wait(0.25)
                if self._closed:
                    return
                self._busy = True
                job = self._queue.popleft() if self._queue else None
                turn = self._languages.popleft() if job is None else None
            started = time.monotonic()
            try:
                if job is not None:
                    self._transcribe(job)
                elif turn is not None:
                    self._identify(*turn)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                    rest_until = time.monotonic() + (time.monotonic() - started) * (1 / self.options.cpu_share - 1)
                    while not (self._closed or self._draining) and time.monotonic() < rest_until:
                        self._cond.wait(rest_until - time.monotonic())

    def _transcribe(self, job: _Job) -> None:
        try:
            started = time.monotonic()
            heard = self.transcriber.transcribe(job.samples, self.options.language)
            done = replace(
                outcome(job.alert, job.start_s, job.end_s, "done", ""),
                language=heard.language,
                language_probability=heard.language_probability,
                text=heard.text,
                segments=tuple(
                    TimedText(round(s.start_s + job.start_s, 2), round(s.end_s + job.start_s, 2), s.text) for s in heard.segments
                ),
                transcribe_s=round(time.monotonic() - started, 3),
            )
            self.done += 1
            self.publish(done)
        except Exception as exc:  # the model or a sink failed: that turn says so, the worker goes on
            log.exception("transcribing the turn of alert %s failed", job.alert.alert_id)
            self._give(job, "failed", f"{type(exc).__name__}: {exc}")

    def _identify(self, detection: Detection, samples: np.ndarray) -> None:
        try:
            language, probability = self.transcriber.identify_language(samples)
            if self.identified is not None:
                self.identified(detection, language, probability)
        except Exception:  # only that turn's language is missing
            log.exception("identifying the language of a turn of %s in %s failed", detection.speaker, detection.source)

    def _give(self, job: _Job, status: str, reason: str) -> None:
        try:
            self.publish(outcome(job.alert, job.start_s, job.end_s, status, reason))
        except Exception:
            log.exception("could not publish the transcript outcome of alert %s", job.alert.alert_id)


def outcome(alert: Alert, start_s: float, end_s: float, status: str, reason: str) -> AlertTranscript:
    """The follow-up of ``alert`` (its turn from ``start_s`` to ``end_s``), without words yet: ``status`` and why."""
    return AlertTranscript(
        alert.alert_id,
        alert.source,
        alert.speaker,
        round(start_s, 3),
        round(end_s, 3),
        status,
        reason=reason,
        wall_time=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )


def _lower_priority(step: int = 10) -> None:
    """Make the calling thread (and the threads it starts) yield the CPU to the others: nice ``step`` more (Linux
    keeps a nice value per thread); nothing where that is not possible."""
    try:
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + step))
    except (AttributeError, OSError):  # no per-thread priority on this platform
        pass
