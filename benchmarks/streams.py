"""Streams benchmark: how many live real-speech streams one watch keeps up with on this machine.

Builds 8 distinct LibriSpeech streams (the 10 test-other readers, enrolled once from other recordings, among
train-clean-100 readers who are never enrolled) and cuts each into clips that begin and end in a pause, so every
turn in a clip is whole and its truth known. N clips, played at real-time pace by ``FileSource(realtime=True)``
with staggered starts, go through ONE ``Watch``. The ramp raises N until the watch no longer holds real time.

Per step it prints:
  lag       ``StreamStatus.lag_s`` sampled every second (what the multiplexer reports), max and p95 over streams
            and samples; ``wall lag`` is the same against the wall clock (elapsed since the stream began minus the
            audio processed), which keeps growing when the multiplexer's backpressure slows the readers down
  held      wall lag p95 < 2 s and not growing (last third vs first third of the step < +1 s)
  TTA       time-to-alert over target turns: ``stream`` counts from the turn's first word to the alert's stream time
            (what ``spotting_metrics.score_alerts`` reports), ``wall`` adds the processing delay, i.e. from the moment the
            turn's first audio arrived to the moment a sink received the alert
  delay     median processing delay of alerts (wall receipt minus the arrival of the audio it was decided on)
  cpu       process CPU seconds / audio seconds processed = core-hours per audio-hour; cores used, and how they split
            between the two watch threads (VAD and framing; embedding and decisions), the reader threads (PyAV decode
            and pacing) and the rest
  others    cores that other processes on the machine used meanwhile (the figures are only clean when ~0)
  RSS       peak resident memory during the step

With ``--transcripts`` every step runs twice in the same session, without and then with alert transcripts (the
shipped Whisper on its own worker, :mod:`voxwatch.transcripts`): the cost of transcription is the ratio of streams
held and of CPU between the two, and each transcribed step also prints the alert rate, how many turns were
transcribed or dropped, and how long transcripts followed their alerts.

Then a trivial consumer takes the same N readers (how much the reader threads cost by themselves), and a profile of
both watch threads at a high N (cProfile; with ``--py-spy BIN`` also a whole-process sample of every thread).

    .venv/bin/python benchmarks/streams.py                      # 1, 25, 50, 100, 150, 200, 250, 300 × 60 s
    .venv/bin/python benchmarks/streams.py --quick              # 1, 50, 100 × 30 s
    .venv/bin/python benchmarks/streams.py --steps 1,250,300 --duration 45 --profile-n 250
    .venv/bin/python benchmarks/streams.py --transcripts --steps 1,50,100,150 --profile-n '' --readers-n 0
    .venv/bin/python benchmarks/streams.py --radio --model ge2e+voxwatch-enc   # narrowband streams: voxwatch-enc's side
"""

from __future__ import annotations

import voxwatch  # noqa: F401  # first, as in the CLI: it pins BLAS to one thread only when it loads before numpy

# isort: split
import argparse
import cProfile
import gc
import io
import math
import os
import pstats
import resource
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from common import DATA, require_data

from voxwatch import channels
from voxwatch.audio import RATE_HZ, write_wav
from voxwatch.corpus import Turn, manifest, speaker_folders, spotting_task
from voxwatch.embedding import DEFAULT_MODEL
from voxwatch.engine import Engine, Settings, Watch
from voxwatch.records import Alert, AlertTranscript, Detection
from voxwatch.snippets import Tap
from voxwatch.sources import FileSource
from voxwatch.spotting_metrics import score_alerts
from voxwatch.streams import Multiplexer, StreamStatus
from voxwatch.transcripts import Transcription, TranscriptOptions

BASE_STREAMS = 8  # distinct compositions
CLIPS_PER_STREAM = 4  # distinct starting points in each
ENROLL_FILES = 4
STREAM_FILES = 2  # per enrolled reader and base stream
IMPOSTORS = 16  # train-clean-100 readers per base stream
HELD_LAG_S = 2.0
HELD_GROWTH_S = 1.0
ABORT_LAG_S = 20.0  # a step whose wall lag passes this has clearly fallen behind: stop it
WARMUP_S = 5.0
SPY_RATE_HZ = 50
BUSY_CORES = 0.25  # other processes using more than this during a step make its real-time figures pessimistic


# -- the streams ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """A stretch of one composed stream, cut in pauses, written as a WAV; ``turns`` in clip time."""

    path: Path
    duration_s: float
    turns: tuple[Turn, ...]


def build_clips(folder: Path, duration_s: float, seed: int, radio: bool = False) -> tuple[dict[str, list[Path]], list[Clip]]:
    """Enrollment files of the 10 test-other readers, and BASE_STREAMS × CLIPS_PER_STREAM clips of about ``duration_s``
    (with ``radio``, heard through the accuracy benchmark's walkie-talkie channel)."""
    readers = speaker_folders(DATA / "resemblyzer/audio_data/librispeech_test-other")
    impostors = manifest(DATA, "resemblyzer/audio_data/librispeech_train-clean-100")
    impostor_names = list(impostors)
    enrollment: dict[str, list[Path]] | None = None
    clips = []
    for k in range(BASE_STREAMS):
        chosen = {}
        for name, files in readers.items():
            by_size = sorted(files, key=lambda f: (-f.stat().st_size, f.name))
            rest = sorted(by_size[ENROLL_FILES:])
            # the largest files always enroll; each base stream hears a different pair of the others
            chosen[name] = by_size[:ENROLL_FILES] + [rest[(STREAM_FILES * k + j) % len(rest)] for j in range(STREAM_FILES)]
        others = {n: impostors[n] for n in (impostor_names[(IMPOSTORS * k + j) % len(impostor_names)] for j in range(IMPOSTORS))}
        task = spotting_task(
            chosen, others, np.random.default_rng(seed + k), enroll_files=ENROLL_FILES, stream_files=STREAM_FILES
        )
        if enrollment is None:
            enrollment = task.enrollment
        elif task.enrollment != enrollment:
            raise RuntimeError("base streams disagree on the enrollment files")
        audio = channels.radio(task.audio, np.random.default_rng(seed + k)) if radio else task.audio
        for c in range(CLIPS_PER_STREAM):
            clips.append(_clip(folder / f"base{k}-clip{c}.wav", audio, task.turns, c, duration_s))
    assert enrollment is not None
    return enrollment, clips


def _clip(path: Path, audio: np.ndarray, turns: list[Turn], index: int, duration_s: float) -> Clip:
    """The ``index``-th of CLIPS_PER_STREAM clips spread over the stream, each starting and ending in a pause."""
    total_s = len(audio) / RATE_HZ
    if total_s < duration_s + 20:
        raise RuntimeError(f"a composed stream lasts {total_s:.0f} s; too short for {duration_s:.0f} s clips")
    wanted = index * (total_s - duration_s - 20) / CLIPS_PER_STREAM
    first = next(i for i, t in enumerate(turns) if t.start_s >= wanted)
    start_s = turns[first].start_s - 0.3  # gaps between turns are at least 0.5 s
    # end in the pause nearest to start + duration
    candidates = [t.end_s + 0.2 for t in turns[first:] if t.end_s + 0.2 <= total_s]
    end_s = min(candidates, key=lambda e: abs(e - start_s - duration_s))
    kept = tuple(
        Turn(t.speaker, round(t.start_s - start_s, 3), round(t.end_s - start_s, 3), round(t.onset_s - start_s, 3))
        for t in turns
        if start_s <= t.start_s and t.end_s <= end_s
    )
    write_wav(path, audio[int(start_s * RATE_HZ) : int(end_s * RATE_HZ)])
    return Clip(path, end_s - start_s, kept)


class LiveFile(FileSource):
    """A ``FileSource(realtime=True)`` that starts after ``delay_s``; notes when its audio began and its thread's CPU."""

    def __init__(self, path: Path, delay_s: float):
        super().__init__(str(path), realtime=True)
        self.delay_s = delay_s
        self.started: float | None = None
        self.cpu_s = 0.0

    def blocks(self):  # type: ignore[no-untyped-def]
        time.sleep(self.delay_s)
        self.started = time.monotonic()
        for block in super().blocks():
            yield block
            self.cpu_s = time.thread_time()  # the reader thread exists for this source only


def make_sources(
    folder: Path, clips: list[Clip], n: int, rng: np.random.Generator, stagger_s: float
) -> tuple[list[LiveFile], dict[str, Clip]]:
    """N uniquely named streams (symlinks), clips assigned round-robin, start times spread over ``stagger_s``."""
    for old in folder.glob("stream-*.wav"):
        old.unlink()
    sources, truth = [], {}
    for i in range(n):
        clip = clips[i % len(clips)]
        link = folder / f"stream-{i:04d}.wav"
        link.symlink_to(clip.path)
        source = LiveFile(link, float(rng.uniform(0, stagger_s)) if n > 1 else 0.0)
        sources.append(source)
        truth[source.name] = clip
    return sources, truth


# -- measuring ---------------------------------------------------------------------------------------------------


class Collector:
    """A sink that notes when each alert and each transcript reached it, and each stream's status when it ended."""

    def __init__(self) -> None:
        self.alerts: list[tuple[Alert, float]] = []
        self.transcripts: list[tuple[AlertTranscript, float]] = []
        self.ended: list[StreamStatus] = []

    def alert(self, alert: Alert) -> None:
        self.alerts.append((alert, time.monotonic()))

    def transcript(self, transcript: AlertTranscript) -> None:
        self.transcripts.append((transcript, time.monotonic()))

    def detection(self, detection: Detection) -> None:
        pass

    def stream_end(self, status: StreamStatus) -> None:
        self.ended.append(status)


def machine_busy_s() -> float:
    """CPU seconds all processes on the machine have used since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


@dataclass
class Step:
    n: int
    wall_s: float = 0.0
    audio_s: float = 0.0
    lag: list[float] = field(default_factory=list)  # StreamStatus.lag_s, every stream and sample
    wall_lag: list[float] = field(default_factory=list)
    max_wall_lag: list[tuple[float, float]] = field(default_factory=list)  # (elapsed, max over streams)
    aborted: bool = False
    cpu_s: float = 0.0
    watch_cpu_s: float = 0.0
    reader_cpu_s: float = 0.0
    other_cores: float = 0.0
    rss_mb: float = 0.0
    targets: int = 0
    detected: int = 0
    false_alarms: int = 0
    tta_stream: list[float] = field(default_factory=list)
    tta_wall: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    profile: pstats.Stats | None = None
    transcribed: bool = False
    alerts: int = 0
    transcripts_done: int = 0
    transcripts_dropped: int = 0
    transcript_delays: list[float] = field(default_factory=list)  # wall s from an alert to its transcript
    transcribe_s: list[float] = field(default_factory=list)  # model time per turn

    @property
    def held(self) -> bool:
        steady = [lag for t, lag in self.max_wall_lag if t >= WARMUP_S]
        if self.aborted or not steady:
            return False
        third = max(1, len(steady) // 3)
        growth = float(np.mean(steady[-third:]) - np.mean(steady[:third]))
        return pct(self.wall_lag, 95) < HELD_LAG_S and growth < HELD_GROWTH_S

    @property
    def core_h_per_audio_h(self) -> float:
        return self.cpu_s / self.audio_s if self.audio_s else math.nan


def run_step(
    engine: Engine,
    folder: Path,
    clips: list[Clip],
    n: int,
    args: argparse.Namespace,
    profile: bool = False,
    transcribe: bool = False,
) -> Step:
    """Watch N real-time streams until their clips end (or the watch falls hopelessly behind); with ``transcribe``,
    alerted turns are transcribed as in ``voxwatch watch``."""
    sources, truth = make_sources(folder, clips, n, np.random.default_rng(n), args.stagger)
    sink = Collector()
    step = Step(n, transcribed=transcribe)
    thread_cpu: dict[str, float] = {}
    profiler = (cProfile.Profile(time.thread_time) if args.profile_clock == "cpu" else cProfile.Profile()) if profile else None

    decider = (cProfile.Profile(time.thread_time) if args.profile_clock == "cpu" else cProfile.Profile()) if profile else None

    def measured(run: Callable[..., object], name: str, prof: cProfile.Profile | None) -> Callable[..., None]:
        def body(*a: object) -> None:
            cpu = time.thread_time()
            if prof is not None:
                prof.enable()
            try:
                run(*a)
            finally:
                if prof is not None:
                    prof.disable()
                thread_cpu[name] = time.thread_time() - cpu

        return body

    transcription = None
    readers: list = list(sources)  # type: ignore[type-arg]
    if transcribe:
        options = TranscriptOptions()
        taps = {s.name: Tap(s, keep_s=options.keep_s) for s in sources}
        readers = list(taps.values())
        transcription = Transcription(engine.transcriber, lambda name, t0, t1: taps[name].cut(t0, t1), options)
    watch = Watch(
        engine,
        Multiplexer(readers),
        [sink],
        around_decide=measured(lambda body: body(), "decide", decider),
        transcription=transcription,
    )
    consume = measured(watch.run, "watch", profiler)

    gc.collect()
    longest = max(truth[s.name].duration_s for s in sources)
    shortest = min(truth[s.name].duration_s for s in sources)
    busy0, cpu0, t0 = machine_busy_s(), time.process_time(), time.monotonic()
    runner = threading.Thread(target=consume, name="watch")
    runner.start()
    peak_rss = rss_mb()
    done: dict[str, float] = {}
    while runner.is_alive():
        runner.join(timeout=1.0)
        now = time.monotonic()
        elapsed = now - t0
        peak_rss = max(peak_rss, rss_mb())
        by_name = {s.source: s for s in watch.status()}
        sample = []
        for source in sources:
            status = by_name[source.name]
            done[source.name] = status.audio_s
            if status.state != "running" or source.started is None:
                continue
            step.lag.append(status.lag_s)
            wall = max(0.0, min(now - source.started, truth[source.name].duration_s) - status.audio_s)
            sample.append(wall)
        step.wall_lag += sample
        if sample and elapsed <= shortest:
            step.max_wall_lag.append((elapsed, max(sample)))
        if sample and max(sample) > ABORT_LAG_S and not step.aborted:
            step.aborted = True
            watch.stop()
        if elapsed > longest + args.stagger + 3 * ABORT_LAG_S and not step.aborted:  # a stuck watch: never wait forever
            step.aborted = True
            watch.stop()
    step.wall_s = time.monotonic() - t0
    step.cpu_s = time.process_time() - cpu0
    step.other_cores = max(0.0, (machine_busy_s() - busy0 - step.cpu_s) / step.wall_s)
    step.watch_cpu_s = thread_cpu.get("watch", 0.0) + thread_cpu.get("decide", 0.0)
    step.reader_cpu_s = sum(s.cpu_s for s in sources)
    step.rss_mb = peak_rss
    for s in sink.ended:
        done[s.source] = s.audio_s
    step.audio_s = sum(done.values())
    score(step, sink.alerts, sources, truth, done, set(engine.watchlist().names))
    step.alerts = len(sink.alerts)
    alerted_at = {a.alert_id: t for a, t in sink.alerts}
    for t, at in sink.transcripts:
        if t.status == "done":
            step.transcripts_done += 1
            step.transcript_delays.append(at - alerted_at[t.alert_id])
            step.transcribe_s.append(t.transcribe_s)
        elif t.status == "dropped":
            step.transcripts_dropped += 1
    if profiler is not None:
        step.profile = pstats.Stats(profiler)
        step.profile.add(decider)
    watch.stop()
    return step


def score(
    step: Step,
    alerts: list[tuple[Alert, float]],
    sources: list[LiveFile],
    truth: dict[str, Clip],
    done: dict[str, float],
    enrolled: set[str],
) -> None:
    """Detection and time-to-alert per stream, over the turns whose audio was processed."""
    by_stream: dict[str, list[tuple[Alert, float]]] = defaultdict(list)
    for alert, received in alerts:
        by_stream[alert.source].append((alert, received))
    for source in sources:
        heard = done.get(source.name, 0.0)
        turns = [t for t in truth[source.name].turns if t.start_s < heard]  # all of them unless the step was aborted
        mine = by_stream[source.name]
        result = score_alerts([a for a, _ in mine], turns, enrolled, heard)
        step.targets += result.targets
        step.detected += result.detected
        step.false_alarms += result.false_alarms
        step.tta_stream += result.times_to_alert_s
        started = source.started or 0.0
        for alert, received in mine:
            step.delays.append(received - started - alert.stream_time_s)
        # wall time-to-alert: the earliest correct alert of each target turn, counted from the turn's arrival
        for t in turns:
            if t.speaker not in enrolled:
                continue
            hits = [
                received - started - t.start_s
                for a, received in mine
                if a.speaker == t.speaker and t.start_s <= a.stream_time_s <= t.end_s + 1.0
            ]
            if hits:
                step.tta_wall.append(min(hits))


def run_readers_only(folder: Path, clips: list[Clip], n: int, args: argparse.Namespace) -> dict[str, float]:
    """The same N real-time readers into a multiplexer whose consumer does nothing: what reading alone costs."""
    sources, _ = make_sources(folder, clips, n, np.random.default_rng(n), args.stagger)
    mux = Multiplexer(sources)
    consumer_cpu = {}

    def consume() -> None:
        cpu = time.thread_time()
        for items in mux:
            for item in items:
                mux.processed(item)
        consumer_cpu["s"] = time.thread_time() - cpu

    stop_at = args.readers_s
    busy0, cpu0, t0 = machine_busy_s(), time.process_time(), time.monotonic()
    runner = threading.Thread(target=consume, name="trivial-consumer")
    runner.start()
    runner.join(timeout=stop_at)
    readers = sum(s.cpu_s for s in sources)
    listened = sum(time.monotonic() - s.started for s in sources if s.started is not None)
    mux.stop()
    runner.join()
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    audio = sum(s.audio_s for s in mux.status())
    return {
        "n": n,
        "wall_s": wall,
        "audio_s": audio,
        "pace": audio / listened if listened else math.nan,  # audio delivered per second each stream was running
        "cores": cpu / wall,
        "reader_cores": readers / wall,
        "consumer_cores": consumer_cpu.get("s", 0.0) / wall,
        "core_h_per_audio_h": cpu / audio if audio else math.nan,
        "other_cores": max(0.0, (machine_busy_s() - busy0 - cpu) / wall),
        "rss_mb": rss_mb(),
    }


# -- profile -----------------------------------------------------------------------------------------------------


def _find(stats: dict, file_end: str, name: str) -> list:  # type: ignore[type-arg]
    return [k for k in stats if k[0].replace("\\", "/").endswith(file_end) and k[2] == name]


def _inclusive(stats: dict, file_end: str, name: str) -> float:  # type: ignore[type-arg]
    return sum(stats[k][3] for k in _find(stats, file_end, name))


def _own(stats: dict, file_end: str, name: str) -> float:  # type: ignore[type-arg]
    return sum(stats[k][2] for k in _find(stats, file_end, name))


def _from_callers(stats: dict, callee, caller_file: str, caller_names: set[str]) -> float:  # type: ignore[no-untyped-def, type-arg]
    """Inclusive time of the functions ``callee(key)`` accepts, spent on behalf of the named callers."""
    total = 0.0
    for key, (_, _, _, _, callers) in stats.items():
        if not callee(key):
            continue
        for caller, numbers in callers.items():
            if caller[0].replace("\\", "/").endswith(caller_file) and caller[2] in caller_names:
                total += numbers[3]
    return total


def _is_ort_run(key: tuple) -> bool:  # type: ignore[type-arg]
    """``InferenceSession.run`` (the Python wrapper around the binding)."""
    return key[0].replace("\\", "/").endswith("onnxruntime/capi/onnxruntime_inference_collection.py") and key[2] == "run"


def _is_queue_get(key: tuple) -> bool:  # type: ignore[type-arg]
    return key[0].endswith("queue.py") and key[2] == "get"


def profile_summary(step: Step, clock: str, top: int = 22) -> str:
    """Where the watch thread's time went, by stage (cProfile inclusive times), then the top functions."""
    assert step.profile is not None
    stats = step.profile.stats  # type: ignore[attr-defined]
    run = _inclusive(stats, "voxwatch/watch.py", "run")
    decide_loop = _inclusive(stats, "voxwatch/watch.py", "_decide_loop")
    vad = _inclusive(stats, "voxwatch/vad.py", "probabilities")
    vad_ort = _from_callers(stats, _is_ort_run, "voxwatch/vad.py", {"probabilities", "_run_sequence"})
    vad_seq = _inclusive(stats, "voxwatch/vad.py", "_run_sequence")
    embed_ort = _from_callers(stats, _is_ort_run, "voxwatch/embedding.py", {"embed"})
    features = _inclusive(stats, "voxwatch/embedding.py", "_ge2e_features") + _inclusive(
        stats, "voxwatch/embedding.py", "_fbank_features"
    )
    frame = _inclusive(stats, "voxwatch/pipeline.py", "_frame")
    windows = _inclusive(stats, "voxwatch/pipeline.py", "windows")
    final_windows = _inclusive(stats, "voxwatch/pipeline.py", "final_windows")
    decide = _inclusive(stats, "voxwatch/pipeline.py", "decide")
    accumulate = _inclusive(stats, "voxwatch/pipeline.py", "_accumulate")
    end_turn = _inclusive(stats, "voxwatch/pipeline.py", "_end_turn")
    mux_iter = _inclusive(stats, "voxwatch/streams.py", "__iter__")
    mux_wait = _from_callers(stats, _is_queue_get, "voxwatch/streams.py", {"__iter__"})
    handover = _from_callers(stats, lambda k: k[0].endswith("queue.py") and k[2] == "put", "voxwatch/watch.py", {"run"})
    processed = _inclusive(stats, "voxwatch/streams.py", "processed")
    publish = _inclusive(stats, "voxwatch/watch.py", "_publish")
    rows = [
        ("thread 1: Watch.run (VAD and framing)", run),
        ("  multiplexer: taking chunks off the queue", mux_iter),
        ("    of which queue.get (incl. idle waits)", mux_wait),
        ("  Spotter.windows", windows),
        ("    VAD (SileroVad.probabilities)", vad),
        ("      onnxruntime run", vad_ort),
        ("      of which one-stream sequence runs", vad_seq),
        ("      Python: energy gate, rounds, state copies", vad - vad_ort),
        ("    per-frame Python loop (Spotter._frame, _cut, _pause)", frame),
        ("    chunk framing and stacking (rest of windows)", windows - vad - frame),
        ("  Spotter.final_windows", final_windows),
        ("  hand-over to thread 2 (queue.put, incl. waits)", handover),
        ("  rest of Watch.run", run - mux_iter - windows - final_windows - handover),
        ("thread 2: Watch._decide_loop (embedding and decisions)", decide_loop),
        ("  Spotter.decide", decide),
        ("    embed: mel features (numpy)", features),
        ("    embed: onnxruntime run", embed_ort),
        ("    scoring turns (_accumulate)", accumulate),
        ("    closing turns (_end_turn)", end_turn),
        ("  Multiplexer.processed", processed),
        ("  store + sinks (Watch._publish)", publish),
        ("  rest of Watch._decide_loop", decide_loop - decide - processed - publish),
    ]
    out = io.StringIO()
    unit = "CPU s" if clock == "cpu" else "s"
    out.write(
        f"watch threads' profile at N={step.n}, {clock} clock ({step.wall_s:.0f} s wall, watch threads' CPU {step.watch_cpu_s:.0f} s;"
        f" cProfile inflates the Python parts{'; onnxruntime pool threads work outside this thread' if clock == 'cpu' else ''}):\n"
    )
    for label, seconds in rows:
        out.write(
            f"  {label:<58} {seconds:7.2f} {unit:<5} {seconds / max(run + decide_loop, 1e-9):6.1%}  {seconds / step.wall_s:5.2f} per wall s\n"
        )
    out.write(f"\ntop {top} functions by own time:\n")
    stream = io.StringIO()
    step.profile.stream = stream  # type: ignore[attr-defined]
    step.profile.sort_stats("tottime").print_stats(top)
    lines = stream.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    out.write("\n".join(lines[start:]) + "\n")
    return out.getvalue()


def py_spy_summary(raw: Path, seconds: float, rate_hz: int) -> str:
    """Who holds the GIL: py-spy samples (--gil: only the thread holding it) by thread kind and stage."""
    by_thread: Counter[str] = Counter()
    by_stage: Counter[tuple[str, str]] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0]
        kind = (
            "watch"
            if "watch" in thread
            else "reader"
            if "source:" in thread or "_read" in stack
            else "sampler/main"
            if "MainThread" in thread or "main" in thread
            else "other"
        )
        by_thread[kind] += n
        total += n
        names = " ".join(frames[1:])
        stage = next(
            (label for key, label in STAGES if key in names),
            frames[-1].split(" (")[0] if len(frames) > 1 else "?",
        )
        by_stage[(kind, stage)] += n
    out = io.StringIO()
    expected = seconds * rate_hz
    out.write(
        f"py-spy --gil: the GIL was held in {total} of ~{expected:.0f} samples ({total / expected:.0%} of the time); holders:\n"
    )
    for kind, n in by_thread.most_common():
        out.write(f"  {kind:<14} {n / expected:6.1%} of the time\n")
        for (k, stage), m in by_stage.most_common():
            if k == kind and m / expected >= 0.005:
                out.write(f"      {stage:<50} {m / expected:6.1%}\n")
    return out.getvalue()


# innermost recognisable stage wins: most specific first
STAGES = [
    ("_ge2e_features", "embed: mel features"),
    ("embed (voxwatch/embedding.py", "embed: onnxruntime + l2"),
    ("_run_sequence", "VAD: sequence runs"),
    ("probabilities", "VAD: batched runs + Python"),
    ("_frame", "per-frame loop"),
    ("_accumulate", "scoring"),
    ("_publish", "store + sinks"),
    ("decode (voxwatch/audio.py", "reader: PyAV decode/resample"),
    ("blocks (voxwatch/audio.py", "reader: pacing sleep"),
    ("chunks (voxwatch/audio.py", "reader: re-cutting chunks"),
    ("_read (voxwatch/streams.py", "reader: queue put / backpressure"),
    ("__iter__ (voxwatch/streams.py", "multiplexer: queue get"),
    ("process (voxwatch/pipeline.py", "Spotter.process (rest)"),
]


# -- report ------------------------------------------------------------------------------------------------------


def row(step: Step) -> str:
    cores = step.cpu_s / step.wall_s
    watch_c, read_c = step.watch_cpu_s / step.wall_s, step.reader_cpu_s / step.wall_s
    rest_c = max(0.0, cores - watch_c - read_c)
    held = "yes" if step.held else ("ABORTED" if step.aborted else "no")
    return (
        f"{step.n:>4} {held:>7} {max(step.lag, default=0):6.2f} {pct(step.lag, 95):5.2f}"
        f" {max(step.wall_lag, default=0):7.2f} {pct(step.wall_lag, 95):5.2f}"
        f" {pct(step.tta_stream, 50):5.2f}/{pct(step.tta_stream, 95):5.2f} {pct(step.tta_wall, 50):5.2f}/{pct(step.tta_wall, 95):5.2f}"
        f" {pct(step.delays, 50):5.2f} {step.detected:>4}/{step.targets:<4} {step.detected / max(step.targets, 1):5.1%}"
        f" {step.false_alarms / max(step.audio_s / 3600, 1e-9):6.1f}"
        f" {step.core_h_per_audio_h:8.5f} {cores:5.2f} {watch_c:5.2f} {read_c:5.2f} {rest_c:5.2f} {step.other_cores:6.2f}"
        f" {step.rss_mb:7.0f}{'  *' if step.other_cores > BUSY_CORES else ''}"
    )


HEADER = (
    f"{'N':>4} {'held':>7} {'lag max':>6} {'p95':>5} {'wall lag':>7} {'p95':>5} {'TTA stream 50/95':>11} {'TTA wall 50/95':>11}"
    f" {'delay':>5} {'detected':>9} {'rate':>5} {'FA/h':>6} {'core-h/h':>8} {'cores':>5} {'watch':>5} {'read':>5} {'rest':>5}"
    f" {'others':>6} {'RSS MB':>7}"
)


def transcription_row(step: Step, without: Step | None) -> str:
    """What transcription did in a step, and what it cost against the same N without it."""
    minutes = step.wall_s / 60
    text = (
        f"     with transcripts: {step.alerts} alerts ({step.alerts / minutes:.1f}/min), {step.transcripts_done} transcribed,"
        f" {step.transcripts_dropped} dropped; transcript after its alert: median {pct(step.transcript_delays, 50):.1f} s,"
        f" p95 {pct(step.transcript_delays, 95):.1f} s; model {pct(step.transcribe_s, 50):.2f} s per turn"
    )
    if without is not None:
        text += (
            f"; CPU ×{step.core_h_per_audio_h / without.core_h_per_audio_h:.2f} and wall lag p95"
            f" {pct(step.wall_lag, 95):.2f} s vs {pct(without.wall_lag, 95):.2f} s without"
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="steps 1, 50, 100 of 30 s; shorter reader and profile runs")
    parser.add_argument("--steps", default="", help="comma-separated stream counts (default 1,25,50,100,150,200,250,300)")
    parser.add_argument("--duration", type=float, default=0.0, help="stream seconds per step (default 60, quick 30)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (Settings.threads)")
    parser.add_argument("--stagger", type=float, default=2.0, help="stream starts spread over this many seconds")
    parser.add_argument(
        "--profile-n", default="max,250", help="streams in each profiled run; 'max': the largest N held ('': no profile)"
    )
    parser.add_argument(
        "--profile-clock", choices=["cpu", "wall"], default="cpu", help="cProfile timer: the watch thread's CPU or wall time"
    )
    parser.add_argument("--readers-n", type=int, default=250, help="streams in the readers-only run (0: skip it)")
    parser.add_argument("--readers-s", type=float, default=0.0, help="seconds of the readers-only run (default 30, quick 15)")
    parser.add_argument("--py-spy", default="", help="path of a py-spy binary: also sample every thread during the profile")
    parser.add_argument("--keep-going", action="store_true", help="do not stop the ramp at the first step that falls behind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="embedding model (compare two in the same session: the machine matters)"
    )
    parser.add_argument("--db", default="", help="keep the enrolled readers in this store and reuse them next time")
    parser.add_argument("--radio", action="store_true", help="the streams through a walkie-talkie channel (narrowband)")
    parser.add_argument(
        "--transcripts", action="store_true", help="run each step without and then with alert transcripts (same session)"
    )
    parser.add_argument(
        "--enrolled", type=int, default=0, help="enroll only this many of the 10 readers (fewer alerts; default: all)"
    )
    args = parser.parse_args()
    require_data()
    steps = [int(x) for x in args.steps.split(",") if x] or ([1, 50, 100] if args.quick else [1, 25, 50, 100, 150, 200, 250, 300])
    duration = args.duration or (30.0 if args.quick else 60.0)
    args.readers_s = args.readers_s or (15.0 if args.quick else 30.0)
    profile_s = 20.0 if args.quick else 40.0

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.monotonic()
        enrollment, clips = build_clips(folder, duration, args.seed, args.radio)
        if args.enrolled:
            enrollment = dict(sorted(enrollment.items())[: args.enrolled])
        profile_clips = clips
        if args.profile_n and abs(profile_s - duration) >= 1:
            (folder / "profile").mkdir()
            profile_clips = build_clips(folder / "profile", profile_s, args.seed, args.radio)[1]
        built = time.monotonic() - t
        engine = Engine(Settings(db=Path(args.db) if args.db else folder / "bench.db", threads=args.threads, model=args.model))
        known = set(engine.watchlist().names)
        for name, files in enrollment.items():
            if name not in known:
                engine.enroll(name, [str(f) for f in files], note="benchmark")
        _models = (engine.backend, engine.vad, engine.transcriber if args.transcripts else None)  # loaded before the first step
        targets = sum(t.speaker in enrollment for c in clips for t in c.turns)
        print(
            f"{len(clips)} clips of {np.mean([c.duration_s for c in clips]):.0f} s from {BASE_STREAMS} composed streams,"
            f" {targets} target turns by {len(enrollment)} enrolled readers; set-up {time.monotonic() - t:.0f} s"
            f" (streams {built:.0f} s, enrollment {time.monotonic() - t - built:.0f} s);"
            f" model {args.model}{', radio channel' if args.radio else ''}; onnxruntime threads {args.threads}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; {os.cpu_count()} CPUs"
        )
        print(HEADER, flush=True)
        done: list[Step] = []
        with_asr: list[Step] = []
        for n in steps:
            step = run_step(engine, folder, clips, n, args)
            done.append(step)
            print(row(step), flush=True)
            if args.transcripts:
                other = run_step(engine, folder, clips, n, args, transcribe=True)
                with_asr.append(other)
                print(row(other) + "   (with transcripts)\n" + transcription_row(other, step), flush=True)
                if not other.held and not step.held and not args.keep_going:
                    print(f"  stopped the ramp: N={n} did not hold real time")
                    break
            elif not step.held and not args.keep_going:
                print(f"  stopped the ramp: N={n} did not hold real time")
                break

        if any(s.other_cores > BUSY_CORES for s in done):
            print(
                f"  * other processes used more than {BUSY_CORES} cores meanwhile (column 'others'): lag and N held are pessimistic there"
            )
        held = [s for s in done if s.held]
        best = max(held, key=lambda s: s.n) if held else None
        at_250 = next((s for s in done if s.n == 250), None) or max(done, key=lambda s: s.n)
        base = next((s for s in done if s.n == 1), None)
        added = pct(best.delays, 50) - pct(base.delays, 50) if best and base else math.nan
        print(
            f"RESULT: largest N held in real time {best.n if best else 0};"
            f" {best.core_h_per_audio_h if best else math.nan:.4f} core-hours per audio-hour at that N;"
            f" RSS {at_250.rss_mb:.0f} MB at N={at_250.n} (peak ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB);"
            f" median time-to-alert added by load vs N=1: {added:+.2f} s"
            f" (wall TTA median {pct(best.tta_wall, 50) if best else math.nan:.2f} s vs {pct(base.tta_wall, 50) if base else math.nan:.2f} s)",
            flush=True,
        )

        if args.transcripts:
            asr_held = max((s.n for s in with_asr if s.held), default=0)
            plain_held = max((s.n for s in done if s.held), default=0)
            print(
                f"RESULT with transcripts: largest N held {asr_held} against {plain_held} without in this session"
                f" (ratio {asr_held / max(plain_held, 1):.2f});"
                f" {sum(s.transcripts_done for s in with_asr)} turns transcribed, {sum(s.transcripts_dropped for s in with_asr)} dropped",
                flush=True,
            )

        if args.readers_n:
            r = run_readers_only(folder, clips, args.readers_n, args)
            print(
                f"readers only, N={r['n']} for {r['wall_s']:.0f} s with a consumer that does nothing: {r['cores']:.2f} cores"
                f" (reader threads {r['reader_cores']:.2f}, consumer {r['consumer_cores']:.2f}) ="
                f" {r['core_h_per_audio_h']:.5f} core-hours per audio-hour, {r['pace']:.2f}× real time per stream;"
                f" others {r['other_cores']:.2f} cores; RSS {r['rss_mb']:.0f} MB",
                flush=True,
            )

        profiled = []
        for item in filter(None, args.profile_n.split(",")):
            n = (best.n if best else 0) if item == "max" else int(item)
            if n > 0 and n not in profiled:
                profiled.append(n)
        for n in profiled:
            spy = None
            raw = folder / f"py-spy-{n}.txt"
            if args.py_spy:
                spy = subprocess.Popen(
                    [args.py_spy, "record", "--pid", str(os.getpid()), "--duration", str(int(profile_s)), "--rate", str(SPY_RATE_HZ),
                     "--format", "raw", "--threads", "--gil", "--nonblocking", "--output", str(raw)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            step = run_step(engine, folder, profile_clips, n, args, profile=True)
            print(HEADER + "\n" + row(step) + "   (profiled)")
            print(profile_summary(step, args.profile_clock))
            if spy is not None:
                spy.wait()
                if raw.is_file():
                    print(py_spy_summary(raw, profile_s, SPY_RATE_HZ))
        engine.close()


if __name__ == "__main__":
    main()
