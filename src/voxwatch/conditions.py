"""Test conditions for spotting accuracy: clean enrollment audio per voice, and a stream with its truth turns, clean
or through a channel (radio; telephone for some turns), perturbed per turn (simulated emotion), or in another language
(Arabic isolated words)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import channels
from .audio import RATE_HZ, load_audio
from .corpus import SpottingTask, Turn, compose
from .perturb import emote

__all__ = ["Condition", "arabic_condition", "emotional_condition", "from_task", "phone_in_condition", "radio_condition"]


@dataclass(frozen=True)
class Condition:
    """Clean enrollment audio per voice, and a stream with its truth turns (impostor turns carry their own ids)."""

    name: str
    enrollment: dict[str, list[np.ndarray]]
    audio: np.ndarray
    turns: list[Turn]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / RATE_HZ

    @property
    def enrolled(self) -> set[str]:
        return set(self.enrollment)

    def cut(self, turn: Turn) -> np.ndarray:
        return self.audio[round(turn.start_s * RATE_HZ) : round(turn.end_s * RATE_HZ)]


def from_task(task: SpottingTask, name: str = "clean") -> Condition:
    """A :class:`~voxwatch.corpus.SpottingTask` (enrollment files) as a condition (enrollment audio)."""
    enrollment = {k: [load_audio(f) for f in files] for k, files in task.enrollment.items()}
    return Condition(name, enrollment, task.audio, task.turns)


def radio_condition(clean: Condition, rng: np.random.Generator, snr_db: float = 10.0) -> Condition:
    """The whole stream through a walkie-talkie channel; the turns keep their times, the enrollment stays clean."""
    return Condition("radio", clean.enrollment, channels.radio(clean.audio, rng, snr_db=snr_db), clean.turns)


def phone_in_condition(clean: Condition, rng: np.random.Generator, share: float = 0.5) -> Condition:
    """A call-in show: each turn of the stream heard through a telephone line with probability ``share`` (the callers),
    the others as recorded in the studio, so the channel changes with the speaker; turn times and the clean enrollment
    stay."""
    audio = clean.audio.copy()
    for turn in clean.turns:
        if rng.random() < share:
            start, end = round(turn.start_s * RATE_HZ), round(turn.end_s * RATE_HZ)
            audio[start:end] = channels.telephone(audio[start:end], rng)
    return Condition("phone-in", clean.enrollment, audio, clean.turns)


def emotional_condition(
    clean: Condition, rng: np.random.Generator, keep_vocal_tract: bool = True, gap_s: tuple[float, float] = (0.5, 2.0)
) -> Condition:
    """Every turn of the stream perturbed on its own by :func:`emote`, re-assembled with new pauses and turn times.

    ``keep_vocal_tract=False`` (the condition "emotional-resampled") shifts pitch by resampling alone."""
    parts = [(t.speaker, emote(clean.cut(t), rng, keep_vocal_tract)) for t in clean.turns]
    audio, turns = compose(parts, rng, gap_s)  # type: ignore[arg-type]
    return Condition("emotional" if keep_vocal_tract else "emotional-resampled", clean.enrollment, audio, turns)


def arabic_condition(
    speakers: dict[str, list[Path]],
    rng: np.random.Generator,
    enrolled: int = 7,
    enroll_words: int = 20,
    turn_words: tuple[int, int] = (6, 12),
    turns_per_speaker: int | None = None,
    gap_s: tuple[float, float] = (0.5, 2.0),
) -> Condition:
    """Isolated-word speakers: ``enrolled`` of them enrolled from ``enroll_words`` concatenated words each; the stream
    has turns of ``turn_words`` concatenated words of their remaining words and of every other speaker, shuffled."""
    names = sorted(speakers)
    chosen = {names[i] for i in rng.permutation(len(names))[:enrolled]}
    enrollment, parts = {}, []
    for name in names:
        clips = [load_audio(speakers[name][i]) for i in rng.permutation(len(speakers[name]))]
        if name in chosen:
            enrollment[name] = [np.concatenate(clips[:enroll_words])]
            clips = clips[enroll_words:]
        turns = []
        while len(clips) >= turn_words[0] and (turns_per_speaker is None or len(turns) < turns_per_speaker):
            n = int(rng.integers(turn_words[0], turn_words[1] + 1))
            turns.append(np.concatenate(clips[:n]))
            clips = clips[n:]
        parts += [(name, t) for t in turns]
    order = rng.permutation(len(parts))
    audio, turns_ = compose([parts[i] for i in order], rng, gap_s)  # type: ignore[misc]
    return Condition("non-English", enrollment, audio, turns_)
