"""Labelled speech for demos, tests and benchmarks: recordings grouped by speaker, and streams composed from
them with their ground-truth turns."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AUDIO_SUFFIXES, RATE_HZ
from .channels import ENERGY_FRAME_S, frame_energies
from .errors import UsageError
from .records import _JsonRecord


@dataclass(frozen=True)
class Turn(_JsonRecord):
    """Ground truth: ``speaker``'s recording plays from ``start_s`` to ``end_s`` of a composed stream, and its first
    word begins at ``onset_s`` (a recording may open with silence: LibriSpeech's with about half a second)."""

    speaker: str
    start_s: float
    end_s: float
    onset_s: float


ONSET_BELOW_PEAK_DB = 25.0  # a frame this close to a recording's loudest is speech...
ONSET_ABOVE_FLOOR_DB = 10.0  # ...if it also stands this far above the recording's quietest tenth (its noise)


def speech_onset_s(audio: np.ndarray) -> float:
    """Where the first word of a recording of one voice begins (s): its first 20 ms frame within 25 dB of the
    loudest and 10 dB above the noise floor (the quietest tenth of its frames); 0 for a recording shorter than a
    frame."""
    energy = frame_energies(audio)
    if not len(energy):
        return 0.0
    level = 10 * np.log10(energy + 1e-12)
    floor = np.percentile(level, 10)
    threshold = max(level.max() - ONSET_BELOW_PEAK_DB, floor + ONSET_ABOVE_FLOOR_DB)
    return float(np.argmax(level >= min(threshold, level.max())) * ENERGY_FRAME_S)  # all noise: its loudest frame


def speaker_folders(root: str | Path) -> dict[str, list[Path]]:
    """``root/<speaker>/<audio files>`` → speaker → sorted files (speakers without audio are left out)."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder of per-speaker sub-folders")
    found = {
        d.name: sorted(f for f in d.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
        for d in sorted(root.iterdir())
        if d.is_dir()
    }
    found = {k: v for k, v in found.items() if v}
    if not found:
        raise UsageError(f"{root}: no sub-folder holds audio files (expected one sub-folder per speaker)")
    return found


def manifest(root: str | Path, folder: str) -> dict[str, list[Path]]:
    """Single-speaker files under ``folder`` listed in ``root/MANIFEST.tsv``, grouped by speaker id."""
    root = Path(root)
    groups: dict[str, list[Path]] = defaultdict(list)
    with open(root / "MANIFEST.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["local_path"].startswith(folder.rstrip("/") + "/") and row["speaker_id"] not in ("MULTI", "NONE"):
                groups[row["speaker_id"]].append(root / row["local_path"])
    return {k: sorted(v) for k, v in sorted(groups.items())}


def compose(
    parts: list[tuple[str | None, np.ndarray]], rng: np.random.Generator, gap_s: tuple[float, float] = (0.5, 2.0)
) -> tuple[np.ndarray, list[Turn]]:
    """Concatenate utterances with random silences; ``None`` speakers are recorded as ``"?"``."""
    pieces, turns, position = [], [], 0
    for speaker, audio in parts:
        gap = np.zeros(int(rng.uniform(*gap_s) * RATE_HZ), np.float32)
        pieces += [gap, audio.astype(np.float32)]
        position += len(gap)
        start_s = position / RATE_HZ
        turns.append(
            Turn(
                speaker or "?",
                round(start_s, 3),
                round(start_s + len(audio) / RATE_HZ, 3),
                round(start_s + speech_onset_s(audio), 3),
            )
        )
        position += len(audio)
    tail = np.zeros(int(gap_s[1] * RATE_HZ), np.float32)
    return np.concatenate(pieces + [tail]), turns


@dataclass(frozen=True)
class SpottingTask:
    """Enrollment recordings per voice, and a stream where those voices speak among others (never enrolled),
    made from different recordings than the enrollment."""

    enrollment: dict[str, list[Path]]
    audio: np.ndarray
    turns: list[Turn]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / RATE_HZ


def spotting_task(
    speakers: dict[str, list[Path]],
    impostors: dict[str, list[Path]],
    rng: np.random.Generator,
    enroll_files: int = 3,
    stream_files: int = 3,
    impostor_files: int = 1,
    gap_s: tuple[float, float] = (0.5, 2.0),
) -> SpottingTask:
    """Enroll each of ``speakers`` from its ``enroll_files`` largest recordings; the stream interleaves (shuffled)
    up to ``stream_files`` of its other recordings with up to ``impostor_files`` of each impostor."""
    from .audio import load_audio

    overlap = set(speakers) & set(impostors)
    if overlap:
        raise UsageError(f"voices cannot be both enrolled and impostors: {sorted(overlap)}")
    enrollment, parts = {}, []
    for name, files in speakers.items():
        if len(files) <= enroll_files:
            raise UsageError(f"{name}: {len(files)} recordings; need more than {enroll_files} (enrollment and stream apart)")
        by_size = sorted(files, key=lambda f: (-f.stat().st_size, f.name))
        enrollment[name] = by_size[:enroll_files]
        parts += [(name, f) for f in sorted(by_size[enroll_files:])[:stream_files]]
    parts += [(name, f) for name, files in impostors.items() for f in files[:impostor_files]]
    order = rng.permutation(len(parts))
    audio, turns = compose([(parts[i][0], load_audio(parts[i][1])) for i in order], rng, gap_s)
    return SpottingTask(enrollment, audio, turns)
