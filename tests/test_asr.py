"""Speech recognition on real speech from ../shared/data with the shipped Whisper model: the language of English, Dutch
and Arabic speech; the words of labelled clips at a measured word accuracy with a floor; and ``voxwatch transcribe``
naming who said what in a recording with an enrolled voice and a stranger."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from voxwatch.asr import SHIPPED_ASR, Transcriber, load_transcriber
from voxwatch.asr_eval import (
    LabelledClip,
    arabic_clips,
    digit_clips,
    dutch_clips,
    english_sentence_clips,
    keyword_clips,
    normalise,
    word_errors,
)
from voxwatch.audio import load_audio, write_wav
from voxwatch.cli import main
from voxwatch.errors import ModelError, UsageError
from voxwatch.named_transcripts import as_srt, as_vtt
from voxwatch.records import NamedTurn
from voxwatch.rttm import rttm_line


@pytest.fixture(scope="module")
def whisper() -> Transcriber:
    return load_transcriber(threads=2)


def word_error_rate(transcriber: Transcriber, clips: list[LabelledClip]) -> float:
    edits = words = 0
    for clip in clips:
        assert clip.words is not None
        e, n = word_errors(clip.words, transcriber.transcribe(clip.samples).text)
        edits, words = edits + e, words + n
    return edits / words


def test_word_errors_and_normalisation() -> None:
    assert normalise("Zero, ONE; 2 — Café!") == ["zero", "one", "two", "cafe"]
    assert word_errors("de plant van de aardappel", "De plant, van de aardappel.") == (0, 5)
    assert word_errors("a b c d", "a x c") == (2, 4)  # one substitution, one deletion
    assert word_errors("yes", "yes yes") == (1, 1)  # an insertion


def test_the_language_of_english_dutch_and_arabic_speech(whisper: Transcriber, data: Path) -> None:
    for clip in [*english_sentence_clips(data, 1), *dutch_clips(data)[:1], *arabic_clips(data, 1)]:
        heard = whisper.transcribe(clip.samples)
        assert heard.language == clip.language and heard.language_probability >= 0.8, (clip.name, heard)


def test_dutch_sentences_are_recognised(whisper: Transcriber, data: Path) -> None:
    # measured with benchmarks/transcripts.py (see the README); floors leave room for other CPUs' int8 kernels
    assert word_error_rate(whisper, dutch_clips(data)) <= 0.45  # 27.7 % measured


@pytest.mark.slow
def test_english_keywords_and_spoken_digits_are_recognised(whisper: Transcriber, data: Path) -> None:
    assert word_error_rate(whisper, keyword_clips(data, 3)) <= 0.15  # 3.3 % measured
    assert word_error_rate(whisper, digit_clips(data, 3)) <= 0.75  # 56.7 % measured: 0.2-0.6 s digits, 8 kHz line


def test_a_forced_language_and_bad_models_fail_clearly(whisper: Transcriber, data: Path, tmp_path: Path) -> None:
    clip = dutch_clips(data)[0]
    assert whisper.transcribe(clip.samples, "nl").language == "nl"
    with pytest.raises(UsageError, match="language 'klingon'"):
        whisper.transcribe(clip.samples, "klingon")
    with pytest.raises(ModelError, match="no such directory"):
        load_transcriber(str(tmp_path / "nothing"))
    with pytest.raises(ModelError, match="not a CTranslate2 Whisper directory"):
        load_transcriber(str(tmp_path))
    assert whisper.name == SHIPPED_ASR


def test_transcribe_names_the_enrolled_voice_and_numbers_the_stranger(
    tmp_path: Path, readers: dict[str, list[Path]], whisper: Transcriber
) -> None:
    jane, other = sorted(readers)[:2]
    mine, theirs = sorted(readers[jane]), sorted(readers[other])
    pause = np.zeros(16000, np.float32)
    parts = [load_audio(mine[6]), pause, load_audio(theirs[6]), pause, load_audio(mine[7]), pause, load_audio(theirs[7])]
    interview = write_wav(tmp_path / "interview.wav", np.concatenate(parts))
    db = str(tmp_path / "v.db")
    runner = CliRunner()
    enrolled = runner.invoke(main, ["--db", db, "enroll", "Jane Doe", *map(str, mine[:2] + mine[3:5]), "--note", "test"])
    assert enrolled.exit_code == 0, enrolled.output
    out = runner.invoke(main, ["--db", db, "transcribe", str(interview), "--format", "json", "--language", "en"])
    assert out.exit_code == 0, out.output
    turns = [NamedTurn.from_json(json.loads(line)) for line in out.stdout.splitlines()]
    who = [t.speaker for t in turns]
    assert len(turns) >= 4, turns
    # Jane Doe's turns carry her name; the other reader is one unknown speaker throughout
    assert who[0] == "Jane Doe" and "Jane Doe" in who[2:], who
    assert {w for w in who if w != "Jane Doe"} == {"unknown speaker 1"}, who
    assert all(t.language == "en" and len(normalise(t.text)) >= 2 for t in turns), turns
    assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(turns))
    assert turns[0].segments and turns[0].segments[0].start_s >= turns[0].start_s - 0.3
    srt = as_srt(turns[0], 1).splitlines()
    assert srt[0] == "1" and " --> " in srt[1] and "," in srt[1] and srt[2].startswith("Jane Doe: ")
    assert as_vtt(turns[0]).splitlines()[1].startswith("<v Jane Doe>")
    assert rttm_line(turns[0], "talk").split()[7] == "Jane_Doe"
    missing = runner.invoke(main, ["--db", db, "transcribe", str(tmp_path / "none.wav")])
    assert missing.exit_code == 3 and "none.wav" in missing.output
