"""Step 2 of training: fine-tune a student encoder (GE2E's architecture, started from GE2E's weights) so that its
embedding of degraded speech matches the teacher's embedding of the same clean speech (distillation), with an
additive-angular-margin softmax over the training speakers keeping voices apart. With ``--speeds``, crops are also
played faster or slower (pitch, formants and tempo move together) and count as new speakers: speaker augmentation,
which multiplies the speakers the margin softmax sees (two speeds: three times as many). Resumable: a checkpoint is
written every ``--save-every`` steps and at the end of each run, and a run stops itself after ``--minutes``;
running the same command again continues where the last run stopped, with the same batches (each step's draw is
seeded by the step number).

    .venv/bin/python -m training.train --cache ~/.cache/voxwatch-train --run ~/.cache/voxwatch-train/run1 \
        --steps 3000 --minutes 60
    .venv/bin/python -m training.train ... --export src/voxwatch/models/voxwatch-enc.onnx
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
    from torch import nn
except ImportError:
    sys.exit("training the encoder needs torch: pip install -e '.[train]' (torch==2.13.0, CPU)")

from voxwatch import ge2e
from voxwatch.embedding import _ge2e_features
from voxwatch.ge2e import read_legacy_state, resemblyzer_weights
from voxwatch.perturb import resample

from .prepare import WINDOW, speed_spans, speed_teacher

SPEED_DRAWS = 7  # keys the random draws of runs with --speeds apart from those without


class Student(nn.Module):
    """GE2E's network: 3-layer LSTM (256) over 40 mel bands, last hidden state, linear, ReLU, L2 norm."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        return nn.functional.normalize(torch.relu(self.linear(hidden[-1])), dim=1)

    @classmethod
    def from_ge2e(cls) -> Student:
        model = cls()
        state = read_legacy_state(resemblyzer_weights())
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items() if k.startswith(("lstm.", "linear."))})
        return model


class AamSoftmax(nn.Module):
    """Additive angular margin softmax (ArcFace) over speaker centres."""

    def __init__(self, centres: torch.Tensor, margin: float = 0.2, scale: float = 30.0):
        super().__init__()
        self.centres = nn.Parameter(centres.clone())
        self.margin, self.scale = margin, scale

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = emb @ nn.functional.normalize(self.centres, dim=1).T
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.cos(theta + self.margin)
        onehot = nn.functional.one_hot(labels, cos.shape[1]).bool()
        return nn.functional.cross_entropy(self.scale * torch.where(onehot, target, cos), labels)


class Batches:
    """Training batches from a prepared cache: crops of degraded (or, with ``p_clean``, clean) audio, the teacher's
    embedding of the same clean crop, and the speaker label. With ``speeds``, each crop is played at one of 1.0 and
    ``speeds`` (drawn evenly), the teacher's target is its embedding of the clean crop at that speed, and each speed
    of a speaker is a speaker of its own."""

    def __init__(self, cache: Path, p_clean: float, speeds: tuple[float, ...] = ()):
        crops = np.load(cache / "crops.npz")
        self.start, self.speaker = crops["start"], crops["speaker"]
        self.speeds = (1.0, *speeds)
        self.spans = [speed_spans(crops, v) for v in self.speeds]
        self.teacher = speed_teacher(cache, self.speeds) if speeds else crops["teacher"].astype(np.float32)[None]
        meta = json.loads((cache / "meta.json").read_text())
        self.n_speakers = len(meta["speakers"])
        self.clean = np.load(cache / "clean.npy", mmap_mode="r")
        self.versions = [np.load(cache / f"degraded{v}.npy", mmap_mode="r") for v in range(meta["versions"])]
        self.p_clean = p_clean

    def centres(self) -> torch.Tensor:
        """Each (speaker, speed)'s mean teacher embedding (where the margin softmax starts); row ``k * speakers + s``
        is speaker ``s`` at speed ``k``."""
        sums = np.zeros((self.n_speakers * len(self.speeds), self.teacher.shape[2]), np.float64)
        for k, teacher in enumerate(self.teacher):
            np.add.at(sums, self.speaker + k * self.n_speakers, teacher)
        return torch.from_numpy((sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32))

    def draw(self, step: int, seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        speeds = len(self.speeds) > 1
        rng = np.random.default_rng([seed, step, SPEED_DRAWS] if speeds else [seed, step])
        pick = rng.integers(0, len(self.start), size)
        which = rng.integers(0, len(self.speeds), size) if speeds else np.zeros(size, np.int64)
        audio = np.empty((size, WINDOW), np.float32)
        for row, (i, k) in enumerate(zip(pick, which)):
            source = self.clean if rng.random() < self.p_clean else self.versions[int(rng.integers(len(self.versions)))]
            start, length = self.spans[k][0][i], self.spans[k][1][i]
            stretch = np.asarray(source[start : start + length], np.float32)
            audio[row] = stretch if k == 0 else resample(stretch, WINDOW)
        mels = torch.from_numpy(_ge2e_features(audio))
        labels = self.speaker[pick] + which * self.n_speakers
        return mels, torch.from_numpy(self.teacher[which, pick]), torch.from_numpy(labels.astype(np.int64))


def _widen_head(saved: dict[str, Any], centres: torch.Tensor) -> None:
    """Give a checkpoint's margin head as many rows as ``centres`` (this run's starting centres), the new ones
    starting there with no momentum in the optimiser (whose last parameter is the head's centres)."""
    known = saved["head"]["centres"]
    if len(known) > len(centres):
        sys.exit(f"the checkpoint has {len(known)} speakers, more than this run's {len(centres)}")
    saved["head"]["centres"] = torch.cat([known, centres[len(known) :]])
    moments = saved["optimiser"]["state"][max(saved["optimiser"]["state"])]
    for key in ("exp_avg", "exp_avg_sq"):
        moments[key] = torch.cat([moments[key], torch.zeros(len(centres) - len(known), known.shape[1])])


def toward(trained: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], share: float) -> dict[str, torch.Tensor]:
    """The trained weights moved ``share`` of the way back to the teacher's (WiSE-FT: student and teacher share one
    architecture and one starting point, so their weighted average is itself an encoder)."""
    return {k: (1 - share) * v.float() + share * teacher[k].float() for k, v in trained.items()}


def export(model: Student, path: Path) -> None:
    """Write the student as ONNX, through the same graph builder and sidecar as GE2E, named after the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ge2e.export(path, {k: v.detach().numpy() for k, v in model.state_dict().items()}, name=path.stem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="folder written by training.prepare")
    parser.add_argument("--run", type=Path, required=True, help="folder for this run's checkpoint and log (outside git)")
    parser.add_argument("--steps", type=int, default=3000, help="total steps of the run (over all its chunks)")
    parser.add_argument("--minutes", type=float, default=60, help="stop this chunk after this long (resume later)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--aam", type=float, default=0.2, help="weight of the speaker margin softmax (0: distillation only)")
    parser.add_argument("--p-clean", type=float, default=0.15, help="share of crops left clean")
    parser.add_argument(
        "--speeds", type=float, nargs="*", default=[], help="also play crops at these speeds, each a speaker of its own"
    )
    parser.add_argument(
        "--init",
        type=Path,
        help="start a new run from another run's checkpoint (model, margin head, optimiser, step); the margin head"
        " gains rows for speakers the checkpoint did not have",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--export", type=Path, help="write the run's latest checkpoint as ONNX here and stop")
    parser.add_argument(
        "--toward-teacher",
        type=float,
        default=0.0,
        help="with --export: move the weights this share of the way back to GE2E's (WiSE-FT weight averaging)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.run.mkdir(parents=True, exist_ok=True)
    checkpoint = args.run / "checkpoint.pt"
    model = Student.from_ge2e()
    if args.export:
        if not 0 <= args.toward_teacher <= 1:
            sys.exit(f"--toward-teacher {args.toward_teacher}: a share from 0 to 1")
        if checkpoint.is_file():
            model.load_state_dict(toward(torch.load(checkpoint)["model"], model.state_dict(), args.toward_teacher))
        export(model, args.export)
        print(f"wrote {args.export} (step {torch.load(checkpoint)['step'] if checkpoint.is_file() else 0})")
        return
    if not (args.cache / "meta.json").is_file():
        sys.exit(f"{args.cache}: no prepared training data; run python -m training.prepare --cache {args.cache} first")
    data = Batches(args.cache, args.p_clean, tuple(args.speeds))
    head = AamSoftmax(data.centres())
    params = list(model.parameters()) + list(head.parameters())
    optimiser = torch.optim.Adam(params, lr=args.lr)
    step = 0
    start = checkpoint if checkpoint.is_file() else args.init
    if start is not None:
        saved = torch.load(start)
        model.load_state_dict(saved["model"])
        if start == args.init:
            _widen_head(saved, head.centres.detach())
        head.load_state_dict(saved["head"])
        optimiser.load_state_dict(saved["optimiser"])
        step = saved["step"]
        print(f"{'resumed' if start == checkpoint else f'started from {start}'} at step {step}")

    def save() -> None:
        torch.save(
            {
                "model": model.state_dict(),
                "head": head.state_dict(),
                "optimiser": optimiser.state_dict(),
                "step": step,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},  # loadable weights-only
            },
            checkpoint.with_suffix(".tmp"),
        )
        checkpoint.with_suffix(".tmp").replace(checkpoint)

    started = time.perf_counter()
    running: dict[str, float] = {}
    while step < args.steps and time.perf_counter() - started < args.minutes * 60:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))  # cosine decay over the whole run
        for group in optimiser.param_groups:
            group["lr"] = lr
        mels, target, labels = data.draw(step, args.seed, args.batch)
        emb = model(mels)
        distill = (1 - (emb * target).sum(dim=1)).mean()
        margin = head(emb, labels) if args.aam > 0 else torch.zeros(())
        loss = distill + args.aam * margin
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 3.0)
        optimiser.step()
        step += 1
        for k, v in (("loss", loss.item()), ("distill", distill.item()), ("aam", margin.item())):
            running[k] = 0.98 * running.get(k, v) + 0.02 * v
        if step % 20 == 0:
            line = f"{step}\t{lr:.2e}\t" + "\t".join(f"{running[k]:.4f}" for k in ("loss", "distill", "aam"))
            with open(args.run / "log.tsv", "a") as log:
                log.write(line + "\n")
            print(f"step {line} ({time.perf_counter() - started:.0f} s)", flush=True)
        if step % args.save_every == 0:
            save()
    save()
    print(f"stopped at step {step} of {args.steps}")


if __name__ == "__main__":
    main()
