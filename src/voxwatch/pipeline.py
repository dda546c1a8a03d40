"""The streaming spotter: chunks of many streams in, alerts, detections and speaker-homogeneous segments out.

Per stream: 32 ms frames → VAD with hysteresis → speech-only buffer → windows of a turn's speech (the first after
``first_window_s``, then every ``early_hop_s`` up to a full window, then every ``hop_s``) → embeddings (one batched
call for all streams) → the current turn's running mean embedding (an early window is scored with it, not kept in it)
→ LLR against the watchlist, calibrated for the stream's channel band (measured on its latest audio, pauses included)
→ an alert for the turn's most likely voice the moment its LLR passes the threshold (by default the one the
calibration gives the set false-alarm rate), once per turn and speaker. A turn ends after ``max_pause_s`` of silence,
or where a window no longer sounds like the turn so far (speaker change); after a pause of ``turn_gap_s`` the turn
goes on only if the next window still sounds like it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from .audio import RATE_HZ
from .embedding import BandRouted, EmbeddingBackend
from .errors import UsageError
from .quality import BandMeter, frame_power
from .records import Alert, AudioChunk, Detection, Evidence, Quiet, Segment
from .scoring import Calibration, Watchlist, band_name, l2_normalise
from .vad import FRAME, VadState, VoiceActivity

DEFAULT_FALSE_ALARMS_PER_HOUR = 0.1  # per enrolled voice, per hour of other people's speech
MAX_BATCH = 64  # windows per embedding call


@dataclass(frozen=True)
class SpotterOptions:
    """Tunable behaviour of :class:`Spotter`; the defaults suit broadcast and telephone speech."""

    hop_s: float = 0.8
    first_window_s: float = 1.0
    early_hop_s: float = 0.3  # windows between the first and the first full one (1.0, 1.3, 1.6 s of a turn's speech)
    vad_onset: float = 0.5
    vad_offset: float = 0.35
    hangover_s: float = 0.2
    turn_gap_s: float = 0.7
    max_pause_s: float = 3.0
    change_threshold: float = 0.7
    threshold_llr: float | None = None  # the LLR an alert needs, given outright for every channel band ...
    false_alarms_per_hour: float = DEFAULT_FALSE_ALARMS_PER_HOUR  # ... or else the one the calibration gives this rate
    cooldown_s: float = 10.0
    trace: bool = False  # also emit an Evidence event per window (evaluation, calibration)

    def __post_init__(self) -> None:
        for name in ("hop_s", "early_hop_s"):
            if not 0.1 <= getattr(self, name) <= 5:
                raise UsageError(f"{name}={getattr(self, name)} is out of range (0.1 to 5 s)")
        if not 0 < self.vad_offset <= self.vad_onset < 1:
            raise UsageError(f"need 0 < vad_offset ({self.vad_offset}) <= vad_onset ({self.vad_onset}) < 1")
        if not self.hangover_s <= self.turn_gap_s <= self.max_pause_s:
            raise UsageError(
                f"need hangover_s ({self.hangover_s}) <= turn_gap_s ({self.turn_gap_s}) <= max_pause_s ({self.max_pause_s})"
            )
        if self.false_alarms_per_hour <= 0:
            raise UsageError(f"the false-alarm rate must be positive, not {self.false_alarms_per_hour}")

    def threshold(self, calibration: Calibration, bandwidth_hz: float) -> float:
        """The LLR a detection needs on a channel whose band ends at ``bandwidth_hz``."""
        if self.threshold_llr is not None:
            return self.threshold_llr
        return calibration.for_band(bandwidth_hz).threshold_for(self.false_alarms_per_hour)


@dataclass
class _Turn:
    start_s: float
    end_s: float
    total: np.ndarray
    windows: list[np.ndarray] = field(default_factory=list)
    speech_samples: int = 0  # speech covered by embedded windows
    bandwidth_hz: float = 0.0  # the stream's channel band at the latest window
    alerted: set[str] = field(default_factory=set)

    def mean(self) -> np.ndarray:
        return l2_normalise(self.total)


@dataclass
class StreamState:
    """One stream's explicit state. ``Spotter.reset(name)`` replaces it with a fresh one."""

    name: str
    stream_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # this watching of the source (keys its alerts)
    vad: VadState = field(default_factory=VadState)
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    position: int = 0  # samples already framed for VAD
    in_speech: bool = False
    quiet: int = 0  # samples since the VAD last said speech
    buffer: deque[np.ndarray] = field(default_factory=deque)  # the turn's latest speech frames (one window's worth)
    anchors: list[tuple[int, int]] = field(default_factory=list)  # (speech offset, stream sample) per run
    speech: int = 0  # speech samples in the current turn
    next_window: int = 0  # speech offset at which the next window ends
    last_window_end: int = 0
    turn: _Turn | None = None
    paused: bool = False  # a pause separates the speech buffer from the turn's earlier windows
    last_heard: dict[str, float] = field(default_factory=dict)  # speaker → stream time last detected
    speech_total_s: float = 0.0
    band: BandMeter = field(default_factory=BandMeter)  # the channel band of its latest audio, pauses included
    known_band_hz: float = 0.0  # the channel band measured beforehand on the whole recording (0: measured as it plays)

    def stream_time(self, offset: int) -> float:
        """Stream time (s) of the sample at speech offset ``offset`` of the current turn."""
        base_off, base_pos = self.anchors[0]
        for off, pos in self.anchors:
            if off > offset:
                break
            base_off, base_pos = off, pos
        return (base_pos + offset - base_off) / RATE_HZ


@dataclass
class Window:
    """A stretch of one stream's speech to embed (empty when it only closes the turn), and where it sits in the turn."""

    state: StreamState
    samples: np.ndarray
    start_s: float
    end_s: float
    speech_samples: int
    closes: bool = False  # the turn ends with this window
    after_pause: bool = False  # the first window after a pause: the turn goes on only if it sounds the same
    bandwidth_hz: float = 0.0  # the stream's channel band (of its latest audio, pauses included; 0: unknown)
    early: bool = False  # between the first window and the first full one: scored with the turn, not kept in it
    embedding: np.ndarray | None = None


Event = Alert | Detection | Evidence | Quiet | Segment


def alert_id(stream_id: str, source: str, turn_start_s: float, speaker: str) -> str:
    """The id of the alert on ``speaker`` in the turn of ``source`` that starts at ``turn_start_s``, while watched as
    stream ``stream_id``: the same whenever that stream's audio is processed again (resumed elsewhere or after a
    restart), so a store keeps each alert once; a recording watched again later, as a new stream, alerts again."""
    return hashlib.sha256(f"{stream_id}\0{source}\0{turn_start_s:.3f}\0{speaker}".encode()).hexdigest()[:32]


class Spotter:
    """Processes chunks of any number of streams; returns :data:`Event` values in stream order.

    The spotter owns no threads and no I/O: sources feed it, sinks consume what it returns.
    """

    def __init__(
        self,
        backend: EmbeddingBackend,
        vad: VoiceActivity,
        watchlist: Watchlist,
        options: SpotterOptions | None = None,
        voiceprints: bool = False,
    ):
        """With ``voiceprints``, every window is embedded for any channel band (``backend.embed(batch, None)``): the
        segments then make voiceprints (enrollment), not evidence heard on one band."""
        if watchlist.matrix.shape[1] != backend.dimension:
            raise UsageError(
                f"watchlist has {watchlist.matrix.shape[1]}-d voiceprints, model {backend.name} makes {backend.dimension}-d"
            )
        self.backend = backend
        self.vad = vad
        self.watchlist = watchlist
        self.options = options or SpotterOptions()
        self.voiceprints = voiceprints
        self._routed = isinstance(backend, BandRouted) and not voiceprints  # a window's band picks its encoder
        self.streams: dict[str, StreamState] = {}
        self._only: dict[str, set[str]] = {}
        self._window = int(backend.window_s * RATE_HZ)
        self._hop = int(self.options.hop_s * RATE_HZ)
        self._early_hop = int(self.options.early_hop_s * RATE_HZ)
        self._first = min(self._window, int(max(self.options.first_window_s, backend.min_window_s) * RATE_HZ))
        self._hangover = int(self.options.hangover_s * RATE_HZ)
        self._gap = int(self.options.turn_gap_s * RATE_HZ)
        self._max_pause = int(self.options.max_pause_s * RATE_HZ)

    def reset(self, name: str) -> None:
        old = self.streams.get(name)
        self.streams[name] = StreamState(name) if old is None else StreamState(name, stream_id=old.stream_id)

    def set_watchlist(self, watchlist: Watchlist) -> None:
        """Watch for a new set of voices from the next window on (e.g. after an enrollment)."""
        if watchlist.matrix.shape[1] != self.backend.dimension:
            raise UsageError(
                f"watchlist has {watchlist.matrix.shape[1]}-d voiceprints, model {self.backend.name} makes {self.backend.dimension}-d"
            )
        self.watchlist = watchlist

    def known_band(self, name: str, bandwidth_hz: float) -> None:
        """Stream ``name`` is a whole recording whose channel band was measured beforehand on all of it: its windows
        are heard on that band."""
        state = self.streams.get(name) or self.streams.setdefault(name, StreamState(name))
        state.known_band_hz = bandwidth_hz

    def restrict(self, name: str, speakers: set[str] | None) -> None:
        """Only alert on ``speakers`` in stream ``name`` (None: every watched voice)."""
        if speakers is None:
            self._only.pop(name, None)
        else:
            self._only[name] = set(speakers)

    def process(self, chunks: list[AudioChunk]) -> list[Event]:
        """Feed chunks (several per stream allowed, in order) and return what they produced."""
        return self.decide(self.windows(chunks))

    def finish(self, name: str) -> list[Event]:
        """The stream ended: close its turn and forget its state."""
        return self.decide(self.final_windows(name))

    def windows(self, chunks: list[AudioChunk]) -> list[Window]:
        """First half of :meth:`process`: VAD and framing; the windows to embed, in stream order.

        :meth:`windows`/:meth:`final_windows` and :meth:`decide` may run on two threads (one each), windows passed in order.
        """
        frames, owners = [], []
        for chunk in chunks:
            state = self.streams.get(chunk.source) or self.streams.setdefault(chunk.source, StreamState(chunk.source))
            state.pending = np.concatenate([state.pending, chunk.samples]) if len(state.pending) else chunk.samples
            n = len(state.pending) // FRAME
            if n:
                frames.append(state.pending[: n * FRAME].reshape(n, FRAME))
                owners += [state] * n
                state.pending = state.pending[n * FRAME :]
        if not frames:
            return []
        stacked = np.concatenate(frames).astype(np.float32, copy=False)
        probs = self.vad.probabilities(stacked, [s.vad for s in owners])
        metered = [not s.known_band_hz for s in owners]
        spectra = iter(frame_power(stacked[metered]))  # one FFT batch; each frame joins its meter in stream order, so
        windows: list[Window] = []  # a window's band is measured on audio up to its end, not on the next voice's
        for frame, prob, state, meter in zip(stacked, probs, owners, metered, strict=True):
            if meter:
                state.band.add(next(spectra))
            windows += self._frame(state, frame, float(prob))
        return windows

    def final_windows(self, name: str) -> list[Window]:
        """First half of :meth:`finish`: the window that closes the stream's turn; the stream's state is dropped."""
        state = self.streams.pop(name, None)
        return [] if state is None else self._pause(state, ends_turn=True)

    # -- segmentation ---------------------------------------------------------------------------------------------

    def _frame(self, state: StreamState, frame: np.ndarray, prob: float) -> list[Window]:
        opts = self.options
        start = state.position
        state.position += FRAME
        if prob >= opts.vad_onset or (state.in_speech and prob >= opts.vad_offset):
            state.in_speech, state.quiet = True, 0
        else:
            state.quiet += FRAME
            if state.quiet > self._hangover:
                state.in_speech = False
        if not state.in_speech:
            if state.quiet >= self._gap and state.speech:
                return self._pause(state, ends_turn=False)
            if state.quiet - FRAME < self._max_pause <= state.quiet:  # the closing window marks where it fell quiet
                at = state.position / RATE_HZ
                return [Window(state, np.zeros(0, np.float32), at, at, 0, closes=True)]
            return []
        if not state.anchors or state.anchors[-1][1] + state.speech - state.anchors[-1][0] != start:
            state.anchors.append((state.speech, start))
        state.buffer.append(frame)
        if len(state.buffer) > self._window // FRAME + 1:
            state.buffer.popleft()
        state.speech += FRAME
        state.speech_total_s += FRAME / RATE_HZ
        if state.next_window == 0:
            state.next_window = self._first
        if state.speech >= state.next_window:
            window = self._cut(state, min(self._window, state.speech))
            window.early = state.next_window != self._first and state.speech < self._window
            early_hop = self._early_hop if self.watchlist.names else self._window  # only an early decision needs them
            state.next_window = (
                max(self._window, state.speech) + self._hop
                if state.speech >= self._window
                else min(self._window, state.speech + early_hop)
            )
            return [window]
        return []

    def _cut(self, state: StreamState, length: int, closes: bool = False) -> Window:
        end = state.speech
        covered = min(length, end - state.last_window_end) if state.last_window_end else length
        state.last_window_end = end
        samples = np.concatenate(state.buffer)[-length:]
        after_pause, state.paused = state.paused, False
        band = state.known_band_hz or state.band.edge_hz()
        return Window(
            state,
            samples,
            state.stream_time(end - length),
            state.stream_time(end - 1) + 1 / RATE_HZ,
            covered,
            closes,
            after_pause,
            band,
        )

    def _pause(self, state: StreamState, ends_turn: bool) -> list[Window]:
        """A pause (or the end of the stream): embed the speech not yet covered by a window if there is enough of it,
        and start the next speech afresh; ``ends_turn`` also closes the turn."""
        out: list[Window] = []
        fresh = state.speech - state.last_window_end
        if state.speech >= self._first and fresh >= self._hop // 2:
            out.append(self._cut(state, min(self._window, state.speech), closes=ends_turn))
        elif ends_turn:
            out.append(Window(state, np.zeros(0, np.float32), 0.0, 0.0, 0, closes=True))
        state.paused = True
        state.buffer = deque()
        state.anchors = []
        state.speech = state.next_window = state.last_window_end = 0
        return out

    # -- embedding and decision -----------------------------------------------------------------------------------

    def decide(self, windows: list[Window]) -> list[Event]:
        """Second half of :meth:`process`: embed the windows (batched across streams), score, alert."""
        groups: dict[tuple[int, str | None], list[Window]] = defaultdict(list)
        for w in windows:
            if len(w.samples):
                groups[(len(w.samples), None if self.voiceprints else band_name(w.bandwidth_hz))].append(w)
        for (_, band), group in groups.items():
            for start in range(0, len(group), MAX_BATCH):  # bounded batches keep memory flat when streams fall behind
                part = group[start : start + MAX_BATCH]
                for w, e in zip(part, self.backend.embed(np.stack([w.samples for w in part]), band)):
                    w.embedding = e
        events: list[Event] = []
        for w in windows:
            if w.embedding is not None:
                events += self._accumulate(w)
            if w.closes and w.state.turn is not None:
                events += self._end_turn(w.state)
            if w.closes and not len(w.samples) and w.end_s:
                events.append(Quiet(w.state.name, w.end_s, dict(w.state.last_heard)))
        return events

    def _accumulate(self, w: Window) -> list[Event]:
        state, e = w.state, w.embedding
        assert e is not None
        events: list[Event] = []
        turn = state.turn
        enough = 1 if w.after_pause else 2  # a pause is a likely change point: check from the first window on
        if turn is not None and (
            self._routed
            and band_name(w.bandwidth_hz) != band_name(turn.bandwidth_hz)  # another encoder: another turn
            or not w.early
            and len(turn.windows) >= enough
            and float(e @ turn.mean()) < self.options.change_threshold
        ):
            events += self._end_turn(state)
            turn = None
        if turn is None:
            turn = state.turn = _Turn(w.start_s, w.end_s, np.zeros_like(e))
        turn.speech_samples += w.speech_samples
        turn.end_s = w.end_s
        turn.bandwidth_hz = w.bandwidth_hz
        if w.early and turn.windows:  # the full window that follows holds its speech: the turn keeps that one
            mean = l2_normalise(turn.total + e)
        else:
            turn.total = turn.total + e
            turn.windows.append(e)
            mean = turn.mean()
        if not self.watchlist.names:
            return events
        scores, llrs = self.watchlist.llrs(mean[None], turn.speech_samples / RATE_HZ, turn.bandwidth_hz)
        threshold = self.options.threshold(self.watchlist.calibration, turn.bandwidth_hz)
        if self.options.trace:
            events.append(
                Evidence(state.name, turn.start_s, w.end_s, turn.speech_samples / RATE_HZ, tuple(float(x) for x in scores[0]))
            )
        top = int(np.argmax(llrs[0]))  # a turn is one voice: only the most likely watched voice may alert
        name, llr = self.watchlist.names[top], float(llrs[0, top])
        only = self._only.get(state.name)
        if llr < threshold or name in turn.alerted or (only is not None and name not in only):
            return events
        recent = state.last_heard.get(name)
        turn.alerted.add(name)
        if recent is None or turn.start_s - recent > self.options.cooldown_s:
            events.append(
                Alert(
                    alert_id=alert_id(state.stream_id, state.name, turn.start_s, name),
                    source=state.name,
                    speaker=name,
                    stream_time_s=round(w.end_s, 3),
                    segment_start_s=round(turn.start_s, 3),
                    score=round(float(scores[0, top]), 4),
                    llr=round(llr, 3),
                    speech_s=round(turn.speech_samples / RATE_HZ, 2),
                    wall_time=datetime.now(UTC).isoformat(timespec="milliseconds"),
                )
            )
        state.last_heard[name] = w.end_s
        return events

    def _end_turn(self, state: StreamState) -> list[Event]:
        turn, state.turn = state.turn, None
        assert turn is not None
        speech_s = turn.speech_samples / RATE_HZ
        mean = turn.mean()
        consistency = float(np.mean(np.stack(turn.windows) @ mean))
        segment = Segment(
            state.name,
            round(turn.start_s, 3),
            round(turn.end_s, 3),
            round(speech_s, 2),
            round(consistency, 4),
            tuple(float(x) for x in mean),
            turn.bandwidth_hz,
        )
        events: list[Event] = [segment]
        if self.watchlist.names:
            scores, llrs = self.watchlist.llrs(mean[None], speech_s, turn.bandwidth_hz)
            threshold = self.options.threshold(self.watchlist.calibration, turn.bandwidth_hz)
            top = int(np.argmax(llrs[0]))
            only = self._only.get(state.name)
            for i, name in enumerate(self.watchlist.names):
                if only is not None and name not in only:
                    continue
                if i == top and llrs[0, i] >= threshold or name in turn.alerted:
                    state.last_heard[name] = turn.end_s
                    events.append(
                        Detection(
                            state.name,
                            name,
                            round(turn.start_s, 3),
                            round(turn.end_s, 3),
                            round(float(scores[0, i]), 4),
                            round(float(llrs[0, i]), 3),
                        )
                    )
        return events
