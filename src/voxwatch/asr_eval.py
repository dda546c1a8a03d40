"""How well speech recognition hears the labelled speech in the shared data: the clips with known words or language
(spoken English keywords, spoken digits on an 8 kHz line, Dutch sentences with transcripts, Arabic keywords),
text normalisation and the word error rate. Used by ``benchmarks/transcripts.py`` and the tests."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import RATE_HZ, load_audio

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
KEYWORDS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]


@dataclass(frozen=True)
class LabelledClip:
    """Speech with its language and, where known, its words (None: only the language is known)."""

    name: str
    samples: np.ndarray
    language: str
    words: str | None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / RATE_HZ


def normalise(text: str) -> list[str]:
    """Lower-case words without punctuation or accents; numerals spelt out as English digit words."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"\d", lambda m: f" {DIGITS[int(m.group())]} ", text)
    return re.findall(r"[^\W_]+(?:'[^\W_]+)?", text)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference words): substitutions, deletions and insertions by edit distance over normalised words."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hyp)], len(ref)


def keyword_clips(data: Path, per_word: int) -> list[LabelledClip]:
    """Google Speech Commands test clips (1 s, English), ``per_word`` of each of ten keywords."""
    folder = data / "speech_commands_v2_test/MLTK_keyworkSpotting/dataset"
    return [
        LabelledClip(f"{word}/{f.name}", load_audio(f), "en", word)
        for word in KEYWORDS
        for f in sorted((folder / word).glob("*.flac"))[:per_word]
    ]


def digit_clips(data: Path, per_digit: int) -> list[LabelledClip]:
    """Free Spoken Digit Dataset (8 kHz narrowband, English), ``per_digit`` of each digit across its speakers."""
    files = sorted((data / "fsdd/recordings").glob("*.flac"))
    picked = [[f for f in files if f.name.startswith(f"{d}_")][:: max(1, 200 // per_digit)][:per_digit] for d in range(10)]
    return [LabelledClip(f.name, load_audio(f), "en", DIGITS[d]) for d, group in enumerate(picked) for f in group]


def dutch_clips(data: Path) -> list[LabelledClip]:
    """The five Flemish sentences with their transcripts."""
    folder = data / "dutch_vl_tts"
    rows = [line.split("\t", 1) for line in (folder / "transcripts.tsv").read_text(encoding="utf-8").splitlines() if line]
    return [LabelledClip(name, load_audio(folder / Path(name).with_suffix(".flac")), "nl", text) for name, text in rows]


def english_sentence_clips(data: Path, count: int) -> list[LabelledClip]:
    """LibriSpeech test-other utterances (read English; no transcripts here: language only)."""
    files = sorted((data / "resemblyzer/audio_data/librispeech_test-other").glob("*/*.flac"))[:: max(1, 100 // count)][:count]
    return [LabelledClip(f.name, load_audio(f), "en", None) for f in files]


def arabic_clips(data: Path, count: int, words: int = 6) -> list[LabelledClip]:
    """Arabic Speech Commands: ``words`` keywords of one speaker joined with 0.3 s pauses (language only), from
    ``count`` speakers."""
    folder = data / "arabic_speech_commands/dataset"
    files = sorted(folder.glob("*/*.flac"))
    speakers = sorted({f.name.split("_")[0] for f in files})[:count]
    pause = np.zeros(int(0.3 * RATE_HZ), np.float32)
    clips = []
    for speaker in speakers:
        mine = [f for f in files if f.name.startswith(speaker + "_") and f.name.endswith("_01.flac")][::7][:words]
        audio = np.concatenate([part for f in mine for part in (load_audio(f), pause)])
        clips.append(LabelledClip(f"arabic-{speaker}", audio, "ar", None))
    return clips
