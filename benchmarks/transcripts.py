"""Transcripts benchmark: language identification and word accuracy of the speech recogniser on the labelled speech in
../shared/data, and its speed per turn (× real time: audio seconds per second of transcription, one turn at a time).

    .venv/bin/python benchmarks/transcripts.py               # 10 English keywords × 6, 10 digits × 5, Dutch, languages
    .venv/bin/python benchmarks/transcripts.py --per-word 2 --threads 1

The cost of transcription in live streams held is measured by ``benchmarks/streams.py --transcripts``.
"""

from __future__ import annotations

import voxwatch  # noqa: F401  # first, as in the CLI: it pins BLAS to one thread only when it loads before numpy

# isort: split
import argparse
import time

import numpy as np
from common import DATA, require_data

from voxwatch.asr import load_transcriber
from voxwatch.asr_eval import arabic_clips, digit_clips, dutch_clips, english_sentence_clips, keyword_clips, word_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-word", type=int, default=6, help="English keyword clips per keyword (10 keywords)")
    parser.add_argument("--per-digit", type=int, default=5, help="spoken digit clips per digit")
    parser.add_argument("--languages", type=int, default=5, help="clips per language for language identification")
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 threads")
    parser.add_argument("--asr-model", default=None, help="a CTranslate2 Whisper folder [default: the shipped one]")
    args = parser.parse_args()
    require_data()
    started = time.monotonic()
    transcriber = load_transcriber(args.asr_model, args.threads)
    print(f"model {transcriber.name} loaded in {time.monotonic() - started:.1f} s; {args.threads} threads")
    sets = {
        "English keywords (Speech Commands, 1 s)": keyword_clips(DATA, args.per_word),
        "spoken digits (FSDD, 8 kHz)": digit_clips(DATA, args.per_digit),
        "Dutch sentences (Flemish TTS corpus)": dutch_clips(DATA),
        "English sentences (LibriSpeech test-other)": english_sentence_clips(DATA, args.languages),
        "Arabic keywords, 6 joined (Arabic Speech Commands)": arabic_clips(DATA, args.languages),
    }
    print(f"{'set':<52} {'clips':>5} {'WER':>6} {'exact':>6} {'lang ok':>7} {'p(lang)':>7} {'× RT':>6} {'s/turn':>6}")
    for label, clips in sets.items():
        edits = words = exact = right = 0
        probabilities, speeds, seconds = [], [], []
        for clip in clips:
            t = time.monotonic()
            heard = transcriber.transcribe(clip.samples)
            took = time.monotonic() - t
            speeds.append(clip.duration_s / took)
            seconds.append(took)
            right += heard.language == clip.language
            probabilities.append(heard.language_probability if heard.language == clip.language else 0.0)
            if clip.words is not None:
                e, n = word_errors(clip.words, heard.text)
                edits, words, exact = edits + e, words + n, exact + (e == 0)
        wer = f"{edits / words:6.1%}" if words else f"{'-':>6}"
        exact_rate = f"{exact / len(clips):6.1%}" if words else f"{'-':>6}"
        print(
            f"{label:<52} {len(clips):>5} {wer} {exact_rate} {right / len(clips):7.1%} {np.mean(probabilities):7.3f}"
            f" {np.median(speeds):6.1f} {np.median(seconds):6.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
