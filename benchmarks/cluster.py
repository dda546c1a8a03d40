"""Cluster benchmark: what the Ray path costs and what a worker's death costs, measured in one run.

Streams are the clips of ``benchmarks/streams.py`` (real LibriSpeech speech, the 10 test-other readers enrolled),
played at real-time pace. For each step N the same N streams (starts spread over ``--stagger`` s) run

  single   through ONE ``Watch`` in this process (what ``voxwatch serve`` does without --ray)
  ray-1    on a Ray cluster of one node: one watch worker (``ClusterWatch``, what ``serve --ray`` does)
  ray-2    on a Ray cluster of two nodes: two workers, the streams spread over them

and a step is held when the wall lag (seconds since a stream began minus the audio it has processed, sampled every
second after a warm-up) has p95 < 2 s and is not growing, as in streams.py. On a cluster the processed audio is what
the workers reported at their last poll (every 0.5 s), so a cluster's lag reads up to that much higher.
The figures: the most streams held per mode, and the ratios ray-1/single and ray-2/single.

Then recovery: ``--recovery-n`` streams on two workers, the worker holding most of them killed (``ray.kill``) half-way;
the time until each moved stream processes audio again on the other worker, and the alerts lost and duplicated: the
stored alert ids of each stream against those of the same clip processed uninterrupted (must be 0 and 0).

On this machine both "nodes" share its cores, so ray-2 shows the overhead of two workers, not twice the capacity;
with ``--address HEAD:6379`` (an existing cluster, the clips on a path every node sees: ``--folder``) the steps run
on all of its nodes instead (mode ray-all).

    nice -n 19 .venv/bin/python benchmarks/cluster.py                     # steps 10, 25, 50 × 30 s
    .venv/bin/python benchmarks/cluster.py --steps 50,100,150 --duration 45
    .venv/bin/python benchmarks/cluster.py --address 10.0.0.1:6379 --folder /shared/bench --steps 100,200,400
"""

from __future__ import annotations

import voxwatch  # noqa: F401  # first, as in the CLI: it pins BLAS to one thread only when it loads before numpy

# isort: split
import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import ray
from common import require_data
from ray.cluster_utils import Cluster
from streams import Clip, Collector, build_clips, pct

from voxwatch.cluster import ClusterWatch
from voxwatch.engine import Engine, Settings, Watch
from voxwatch.records import Alert
from voxwatch.sources import FileSource
from voxwatch.streams import Multiplexer, StreamStatus

HELD_LAG_S = 2.0
HELD_GROWTH_S = 1.0
WARMUP_S = 5.0


class Runner:
    """A watch in this process or on a cluster, behind the four calls a step needs."""

    def __init__(self, name: str, watch: Watch | ClusterWatch, status: Callable[[], list[StreamStatus]]):
        self.name, self.watch, self.status = name, watch, status
        self.thread = threading.Thread(target=watch.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.watch.stop()
        self.thread.join(30)


def local_runner(engine: Engine) -> Runner:
    watch = Watch(engine, Multiplexer([], persistent=True), [Collector()])
    return Runner("single", watch, watch.status)


def cluster_runner(engine: Engine, address: str, name: str, workers: int) -> Runner:
    watch = ClusterWatch(engine, [Collector()], address)
    runner = Runner(name, watch, watch.status)
    deadline = time.monotonic() + 120
    while sum(w["alive"] for w in watch.workers()) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: {workers} workers did not answer within 120 s")
        time.sleep(0.5)
    return runner


def links(folder: Path, clips: list[Clip], tag: str, n: int) -> list[Path]:
    """N uniquely named streams (symlinks to the clips, round-robin)."""
    out = []
    for i in range(n):
        link = folder / f"{tag}-{i:04d}.wav"
        link.unlink(missing_ok=True)
        link.symlink_to(clips[i % len(clips)].path)
        out.append(link)
    return out


def run_step(runner: Runner, files: list[Path], duration_s: float, stagger_s: float) -> tuple[bool, float, float]:
    """Play ``files`` at real-time pace for ``duration_s``; (held, wall lag p95, growth)."""
    rng = np.random.default_rng(len(files))
    starts = sorted((float(rng.uniform(0, stagger_s)) if len(files) > 1 else 0.0, str(f)) for f in files)
    began: dict[str, float] = {}
    t0 = time.monotonic()
    for at, name in starts:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        runner.watch.add(FileSource(name, realtime=True))
        began[name] = time.monotonic()
    samples: list[tuple[float, float]] = []
    end = t0 + stagger_s + duration_s
    while time.monotonic() < end:
        time.sleep(1.0)
        now = time.monotonic()
        for s in runner.status():
            if s.source in began and s.state == "running" and now - began[s.source] > WARMUP_S:
                samples.append((now - t0, now - began[s.source] - s.audio_s))
    running = {s.source for s in runner.status() if s.state == "running"}
    for name in began.keys() & running:
        runner.watch.cancel(name)
    deadline = time.monotonic() + 60
    while any(s.source in began and s.state == "running" for s in runner.status()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if not samples:
        return False, float("inf"), float("inf")
    times = np.array([t for t, _ in samples])
    lags = np.array([lag for _, lag in samples])
    third = (times.max() - times.min()) / 3
    early, late = lags[times <= times.min() + third], lags[times >= times.max() - third]
    growth = float(late.mean() - early.mean()) if len(early) and len(late) else 0.0
    p95 = pct(lags, 95)
    return p95 < HELD_LAG_S and growth < HELD_GROWTH_S, p95, growth


def ramp(runner: Runner, folder: Path, clips: list[Clip], steps: list[int], args: argparse.Namespace) -> int:
    """Run the steps in order until one is not held; the most streams held."""
    held = 0
    for n in steps:
        ok, p95, growth = run_step(runner, links(folder, clips, f"{runner.name}-{n}", n), args.duration, args.stagger)
        print(
            f"  {runner.name:8s} N={n:4d}  wall lag p95 {p95:5.1f} s  growth {growth:+5.1f} s  {'held' if ok else 'NOT held'}",
            flush=True,
        )
        if not ok:
            break
        held = n
    return held


def uninterrupted(engine: Engine, path: Path) -> set[str]:
    spotter = engine.spotter(engine.watchlist())
    events = []
    for chunk in FileSource(str(path)).chunks():
        events += spotter.process([chunk])
    events += spotter.finish(str(path))
    return {e.alert_id for e in events if isinstance(e, Alert)}


def recovery(engine: Engine, address: str, folder: Path, clips: list[Clip], n: int) -> None:
    """Kill the busiest of two workers half-way through ``n`` streams; time to recover, alerts lost and duplicated."""
    runner = cluster_runner(engine, address, "recovery", 2)
    watch = runner.watch
    assert isinstance(watch, ClusterWatch)
    files = links(folder, clips, "recovery", n)
    try:
        for f in files:
            watch.add(FileSource(str(f), realtime=True))
        time.sleep(min(c.duration_s for c in clips) / 2)
        holders = {s.source: s.worker for s in watch.status()}
        victim = max(set(holders.values()), key=lambda w: list(holders.values()).count(w))
        moved = {name: 0.0 for name, w in holders.items() if w == victim}
        ray.kill(ray.get_actor(victim, namespace="voxwatch"))
        killed = time.monotonic()
        recovered: dict[str, float] = {}
        while len(recovered) < len(moved) and time.monotonic() - killed < 60:
            for s in watch.status():
                if s.source in moved and s.worker not in (None, victim) and s.audio_s > 0 and s.source not in recovered:
                    recovered[s.source] = time.monotonic() - killed
            time.sleep(0.1)
        while any(s.state == "running" for s in watch.status()):
            time.sleep(0.5)
    finally:
        runner.close()
    times = sorted(recovered.values())
    lost = dup = expected = 0
    stored: dict[str, list[str]] = {}
    for a in engine.store.alerts():
        stored.setdefault(a.source, []).append(a.alert_id)
    for f in files:
        want, got = uninterrupted(engine, f), stored.get(str(f), [])
        expected += len(want)
        lost += len(want - set(got))
        dup += len(got) - len(set(got) & want)
    print(
        f"recovery: worker {victim} killed holding {len(moved)} of {n} streams; {len(recovered)} resumed elsewhere,"
        f" time to recover median {np.median(times) if times else float('nan'):.1f} s, max {max(times, default=float('nan')):.1f} s;"
        f" alerts expected {expected}, lost {lost}, duplicated {dup}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="10,25,50", help="comma-separated stream counts, in order")
    parser.add_argument("--duration", type=float, default=30.0, help="stream seconds per step")
    parser.add_argument("--stagger", type=float, default=2.0, help="stream starts spread over this many seconds")
    parser.add_argument("--recovery-n", type=int, default=6, help="streams in the recovery run (0: skip it)")
    parser.add_argument("--address", default="", help="an existing Ray cluster (HEAD:6379 or ray://HOST:10001)")
    parser.add_argument("--folder", default="", help="where the clips go (a path every node sees, with --address)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    require_data()
    steps = [int(x) for x in args.steps.split(",") if x]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        enrollment, clips = build_clips(folder, args.duration + args.stagger + 5, args.seed)
        engine = Engine(Settings(db=folder / "bench.db"))
        for name, files in enrollment.items():
            engine.enroll(name, [str(f) for f in files], note="benchmark")
        print(f"{len(clips)} clips, {len(enrollment)} readers enrolled; set-up {time.monotonic() - t:.0f} s", flush=True)
        held: dict[str, int] = {}
        local = local_runner(engine)
        held["single"] = ramp(local, folder, clips, steps, args)
        local.close()
        nodes = None
        if args.address:
            address = args.address
            ray.init(address=address, namespace="voxwatch", logging_level="WARNING")
            modes = [("ray-all", len([n for n in ray.nodes() if n["Alive"]]))]
        else:
            nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
            address = nodes.address
            ray.init(address=address, namespace="voxwatch", logging_level="WARNING")
            modes = [("ray-1", 1), ("ray-2", 2)]
        try:
            for name, workers in modes:
                if nodes is not None and workers == 2:
                    nodes.add_node(num_cpus=1)
                runner = cluster_runner(engine, address, name, workers)
                held[name] = ramp(runner, folder, clips, steps, args)
                runner.close()
            if args.recovery_n:
                if nodes is not None and len(ray.nodes()) < 2:
                    nodes.add_node(num_cpus=1)
                recovery(engine, address, folder, clips, args.recovery_n)
        finally:
            ray.shutdown()
            if nodes is not None:
                nodes.shutdown()
        base = held["single"]
        print(
            "streams held: "
            + ", ".join(f"{m} {n}" + (f" ({n / base:.2f}× single)" if base and m != "single" else "") for m, n in held.items())
        )


if __name__ == "__main__":
    main()
