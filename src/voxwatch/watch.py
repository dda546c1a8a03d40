"""The running watch: sources → multiplexer → spotter (on two threads) → store → sinks."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .audio import RATE_HZ
from .pipeline import Event, StreamState, Window
from .records import Alert, AlertTranscript, AudioChunk, Detection, Quiet
from .sinks import tell
from .sources import Source
from .streams import Multiplexer, StreamEnd, StreamStatus
from .timings import ModelClock
from .transcripts import AlertTranscripts, Transcription

if TYPE_CHECKING:
    from .engine import Engine
    from .store import Store

log = logging.getLogger(__name__)


def resume_point(kind: str, quiet: Quiet | None, status: StreamStatus | None) -> Quiet | None:
    """Where a stream starts again: a recording at its latest quiet point (everything before it is committed); a live
    stream with its clock going on from the audio it had reached, so its alerts' times (and ids) never repeat."""
    if kind == "file" or status is None or (quiet is not None and quiet.at_s >= status.audio_s):
        return quiet
    return Quiet(status.source, status.audio_s, quiet.last_heard if quiet else {})


def commit_transcript(store: Store, transcript: AlertTranscript, replace: bool = True) -> bool:
    """Store an alert's transcript and, when it is done, its turn's language; False when nothing was stored (the
    alert is gone, or, unless ``replace``, it has a transcript already)."""
    if not store.add_transcript(transcript, replace):
        return False
    if transcript.status == "done":
        store.set_language(
            transcript.source, transcript.speaker, transcript.start_s, transcript.language, transcript.language_probability
        )
    return True


class Sink(Protocol):
    """Receives what a watch produces, in order, one call at a time. Alerts and transcripts arrive already committed
    to the store; an alert's transcript follows it once its turn has ended and been transcribed."""

    def alert(self, alert: Alert) -> None: ...

    def transcript(self, transcript: AlertTranscript) -> None: ...

    def detection(self, detection: Detection) -> None: ...

    def stream_end(self, status: StreamStatus) -> None: ...


@dataclass
class _Step:
    """What the first half of a watch hands to the second: windows to embed, chunks they came from, ended streams."""

    windows: list[Window]
    chunks: list[AudioChunk]
    ended: list[StreamEnd]


class Watch:
    """A running watch: sources → multiplexer → spotter → store → sinks. :meth:`run` blocks until every source has
    ended (or, for a persistent multiplexer, until :meth:`stop`); the other methods may be called from other threads."""

    HANDOVER_DEPTH = 4  # steps waiting between the two threads

    def __init__(
        self,
        engine: Engine,
        mux: Multiplexer,
        sinks: Iterable[Sink] = (),
        speakers: list[str] | None = None,
        around_decide: Callable[[Callable[[], None]], None] | None = None,
        transcription: Transcription | None = None,
        commits: bool = True,
    ):
        """``around_decide``, if given, runs the second thread's body (it must call it once): a hook for profiling
        and CPU accounting of that thread. With ``transcription``, alerted turns are transcribed on a third thread
        (:mod:`voxwatch.transcripts`) and each alert is followed by its transcript. With ``commits=False`` nothing is
        written to the store: sinks get every alert and transcript uncommitted (a cluster worker relays them to the one
        writer), and the languages of turns that raised no alert are not identified."""
        self.engine = engine
        self.mux = mux
        self.sinks = list(sinks)
        self.speakers = speakers
        self.spotter = engine.spotter(engine.watchlist(speakers))
        self._around_decide = around_decide
        self._transcription = transcription
        self._behind_at = -float("inf")  # when spotting last fell behind (transcription waits a while after)
        self.transcripts: AlertTranscripts | None = None
        self.clock = ModelClock()  # model time per stage and window, for /metrics
        self._sinks_lock = threading.Lock()  # sinks hear the watch and the transcription worker one call at a time
        self.commits = commits
        self.resume_points: dict[str, Quiet] = {}  # per stream, the latest point it can resume from

    def add(
        self,
        source: Source,
        speakers: set[str] | None = None,
        resume: Quiet | None = None,
        stream_id: str | None = None,
    ) -> None:
        """Watch one more source, for ``speakers`` only or for every watched voice; ``resume``: the source starts at
        that point (``source.start_s``), with the state the stream had there. ``stream_id`` names this watching of the
        source (a new one when None): a stream resumed under its id raises no alert twice."""
        self.spotter.restrict(source.name, speakers)
        self.resume_points.pop(source.name, None)
        state = StreamState(source.name, stream_id=stream_id or uuid.uuid4().hex)
        if resume is not None:
            state.position, state.last_heard = round(resume.at_s * RATE_HZ), dict(resume.last_heard)
        self.spotter.streams[source.name] = state
        self.mux.add(source)

    def cancel(self, name: str) -> None:
        self.mux.cancel(name)

    def restrict(self, name: str, speakers: set[str] | None) -> None:
        """From now on, only alert on ``speakers`` in stream ``name`` (None: every watched voice)."""
        self.spotter.restrict(name, speakers)

    def speech_s(self, name: str) -> float | None:
        """Net speech heard so far in a running stream; None when the stream is not (or no longer) running."""
        state = self.spotter.streams.get(name)
        return None if state is None else state.speech_total_s

    def refresh(self) -> None:
        """Pick up enrollments and forgotten voices from the store."""
        self.spotter.set_watchlist(self.engine.watchlist(self.speakers))

    def stop(self) -> None:
        self.mux.stop()

    def status(self) -> list[StreamStatus]:
        return self.mux.status()

    def run(self) -> None:
        """Two threads, so the two models run side by side: this one takes chunks off the multiplexer and runs VAD
        and framing; a second embeds, scores and publishes. The hand-over queue between them is bounded, so a slow
        second half slows the readers (backpressure) and shows as lag, never as dropped audio."""
        names = self.spotter.watchlist.names
        if self.commits:
            self.engine.store.audit(self.engine.actor, "watch", ",".join(names), " ".join(s.source for s in self.mux.status()))
        handover: queue.Queue[_Step | None] = queue.Queue(maxsize=self.HANDOVER_DEPTH)
        around = self._around_decide
        body = (lambda: around(lambda: self._decide_loop(handover))) if around else (lambda: self._decide_loop(handover))
        decider = threading.Thread(target=body, name="watch-decide", daemon=True)
        if self._transcription is not None:
            t = self._transcription
            self.transcripts = AlertTranscripts(
                t.transcriber,
                t.audio,
                self._publish_transcript,
                t.options,
                self._identified if self.commits else None,  # a cluster worker: only alerted turns, transcribed
                self._spotting_behind,
            )
        decider.start()
        finished = False
        try:
            for items in self.mux:
                chunks = [c for c in items if isinstance(c, AudioChunk)]
                ended = [i for i in items if isinstance(i, StreamEnd)]
                try:
                    started = time.perf_counter()
                    windows = self.spotter.windows(chunks)
                    self.clock.record("vad", time.perf_counter() - started, sum(len(c.samples) / c.rate_hz for c in chunks))
                    for end in ended:
                        windows += self.spotter.final_windows(end.source)
                except Exception:  # one bad batch must not end every watch; what it held is logged, the rest goes on
                    log.exception("VAD failed on %d chunk(s); continuing", len(chunks))
                    windows = []
                handover.put(_Step(windows, chunks, ended))
            finished = True
        finally:
            handover.put(None)
            decider.join()
            if self.transcripts is not None:  # interrupted (Ctrl-C): the turns still waiting are dropped at once
                self.transcripts.close(wait=finished)

    def _decide_loop(self, handover: queue.Queue[_Step | None]) -> None:
        """The second thread: takes every step waiting, decides on their windows together, publishes; until ``None``."""
        warned: set[str] = set()
        checked = time.monotonic()
        while True:
            steps = [handover.get()]
            while steps[-1] is not None:
                try:
                    steps.append(handover.get_nowait())
                except queue.Empty:
                    break
            live = [s for s in steps if s is not None]
            try:
                checked, warned = self._decide(live, checked, warned)
            except Exception:  # a failing sink or status must not stop this thread: the first one would wait forever
                log.exception("reporting a watch step failed; continuing")
            if len(live) < len(steps):
                return

    def _decide(self, steps: list[_Step], checked: float, warned: set[str]) -> tuple[float, set[str]]:
        try:
            windows = [w for s in steps for w in s.windows]
            started = time.perf_counter()
            events = self.spotter.decide(windows)
            audio_s = sum(len(c.samples) / c.rate_hz for s in steps for c in s.chunks)
            self.clock.record("embedding", time.perf_counter() - started, audio_s, sum(1 for w in windows if len(w.samples)))
            self._publish(events)
        except Exception:  # as in run(): what failed is logged, the audio counts as processed, the watch goes on
            log.exception("a watch step failed on %d window(s); continuing", sum(len(s.windows) for s in steps))
        for step in steps:
            for c in step.chunks:
                self.mux.processed(c)
        ended = [end for step in steps for end in step.ended]
        for end in ended:
            self.mux.processed(end)
        if not ended and time.monotonic() - checked <= 2:
            return checked, warned
        status = {s.source: s for s in self.mux.status()}
        behind = {name for name, s in status.items() if s.behind}
        if behind - warned:
            worst = max(behind, key=lambda name: status[name].lag_s)
            log.warning(
                "%d of %d streams falling behind real time; the worst, %s, has %.1f s of audio waiting",
                len(behind),
                len(status),
                worst,
                status[worst].lag_s,
            )
        for end in ended:
            if self.transcripts is not None:
                self.transcripts.stream_ended(end.source)
            self._tell("stream_end", status[end.source])
        return time.monotonic(), behind

    def _publish(self, events: list[Event]) -> None:
        store = self.engine.store
        if self.commits:
            store.add_detections([e for e in events if isinstance(e, Detection)])
        for e in events:
            if isinstance(e, Quiet):
                self.resume_points[e.source] = e  # after the sinks heard everything before it
            elif isinstance(e, Alert):
                if self.commits and not store.add_alert(e):
                    continue
                delivered = self._tell("alert", e)  # else it stays in the outbox
                if delivered and self.commits:
                    store.mark_delivered(e.alert_id)
                if self.transcripts is not None:
                    self.transcripts.alert(e)
            elif isinstance(e, Detection):
                self._tell("detection", e)
                if self.transcripts is not None:
                    self.transcripts.turn_ended(e)

    def _spotting_behind(self) -> bool:
        """Whether transcription should wait: a live stream's processing trails its audio by more than
        ``yield_lag_s``, now or within the last ``yield_hold_s``."""
        assert self._transcription is not None
        options, now = self._transcription.options, time.monotonic()
        if self.mux.live_lag_s() > options.yield_lag_s:
            self._behind_at = now
        return now - self._behind_at < options.yield_hold_s

    def _identified(self, detection: Detection, language: str, probability: float) -> None:
        """On the transcription worker: the language of a detected turn that raised no alert, kept with it."""
        self.engine.store.set_language(detection.source, detection.speaker, detection.start_s, language, probability)

    def _publish_transcript(self, transcript: AlertTranscript) -> None:
        """On the transcription worker: commit the transcript (unless the watch commits nothing), then tell every sink
        (none, if its voice was forgotten)."""
        if self.commits and not commit_transcript(self.engine.store, transcript):
            return
        self._tell("transcript", transcript)

    def _tell(self, event: str, record: Alert | AlertTranscript | Detection | StreamStatus) -> bool:
        """:func:`~voxwatch.sinks.tell`, one call at a time: the watch's and the transcription worker's never
        interleave."""
        with self._sinks_lock:
            return tell(self.sinks, event, record)
