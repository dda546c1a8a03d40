"""Speaker encoders side by side (issue 9): turn-level EER, minDCF and minCllr per condition, on speakers held apart
from the encoder's training (``training/speakers.tsv``) and on folders never trained on.

Each held-out speaker is enrolled from clean speech (the mean embedding of its 1.6 s windows, every 0.8 s); each test
turn, degraded by one condition, is embedded the same way; every (turn x enrolled speaker) pair is a trial scored by
cosine. This measures the encoder alone: no multi-condition voiceprints, no calibration (minCllr is the loss after
the best monotone calibration). The system with both is measured by ``benchmarks/accuracy.py``.

Sets: ``read`` LibriSpeech (train-clean-100 held-out readers: enroll on the first half of the reading, test on the
second; test-other: 4 readings enrolled, 3 tested), ``words`` Speech Commands and DSPSpeech-20 held-out speakers
(isolated words on many microphones, joined into turns), ``persian`` Common Voice held-out speakers, ``arabic`` Arabic
Speech Commands (never trained on), ``ravdess`` RAVDESS actors (never trained on): neutral enrollment against
strongly acted emotion.

    .venv/bin/python benchmarks/encoder.py [--models ge2e voxwatch-enc ...] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import DATA, heldout, require_data

from training.codec import CODECS, round_trip
from voxwatch import channels, perturb
from voxwatch.audio import RATE_HZ, load_audio
from voxwatch.baseline import loud_windows
from voxwatch.corpus import manifest
from voxwatch.embedding import EmbeddingBackend, load_backend
from voxwatch.metrics import eer, min_cllr, min_dcf

WINDOW = int(1.6 * RATE_HZ)
Set = tuple[dict[str, np.ndarray], list[tuple[str, np.ndarray]]]  # enrollment audio per speaker, (speaker, turn) tests


def words_set(speakers: dict[str, list[Path]], enroll_n: int, turn_n: int, turns: int, rng: np.random.Generator) -> Set:
    enroll, tests = {}, []
    for name, files in speakers.items():
        clips = [load_audio(files[i]) for i in rng.permutation(len(files))]
        if len(clips) < enroll_n + turn_n:
            continue
        enroll[name] = np.concatenate(clips[:enroll_n])
        rest = clips[enroll_n:]
        for k in range(min(turns, len(rest) // turn_n)):
            tests.append((name, np.concatenate(rest[k * turn_n : (k + 1) * turn_n])))
    return enroll, tests


def read_set() -> Set:
    enroll, tests = {}, []
    for name, files in heldout("resemblyzer/audio_data/librispeech_train-clean-100").items():
        x = load_audio(files[0])
        enroll[name], half = x[: len(x) // 2], x[len(x) // 2 :]
        tests.append((name, half))
    from voxwatch.corpus import speaker_folders

    for name, files in speaker_folders(DATA / "resemblyzer/audio_data/librispeech_test-other").items():
        enroll[name] = np.concatenate([load_audio(f) for f in files[:4]])
        tests += [(name, load_audio(f)) for f in files[4:7]]
    return enroll, tests


def ravdess_set() -> Set:
    """Enroll each actor on the neutral statements; test on strong-intensity emotional ones (emotion code 03-08)."""
    enroll, tests = {}, []
    for actor in sorted((DATA / "ravdess_eval").iterdir()):
        files = sorted(actor.glob("*.flac"))
        neutral = [f for f in files if f.name.split("-")[2] == "01"]
        strong = [
            f for f in files if f.name.split("-")[3] == "02" and f.name.split("-")[2] in ("03", "04", "05", "06", "07", "08")
        ]
        enroll[actor.name] = np.concatenate([load_audio(f) for f in neutral])
        tests += [(actor.name, load_audio(f)) for f in strong[::2]]
    return enroll, tests


def _babble(rng: np.random.Generator, pool: list[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def add(x: np.ndarray) -> np.ndarray:
        others = [pool[int(i)] for i in rng.integers(0, len(pool), 3)]
        noise = sum(np.resize(o, len(x)) for o in others)
        return channels.add_noise(x, 5.0, rng, noise=np.asarray(noise, np.float32))

    return add


def hard_radio(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A radio chain unlike the benchmark's: 450-2700 Hz, hard clipping, AMR at 4.75 kbit/s, wideband hiss at 12 dB."""
    y = channels.compand(channels.narrowband(channels.bandpass(x, 450, 2700)), ratio=6.0)
    y = channels.clip(y / max(float(np.abs(y).max()), 1e-9), 0.3)
    y = round_trip(y, CODECS["amrnb"])
    return channels.add_noise(y, 12.0, rng, noise=rng.standard_normal(len(y)).astype(np.float32))


def conditions(rng: np.random.Generator, pool: list[np.ndarray]) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    c: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "clean": lambda x: x,
        "radio": lambda x: channels.radio(x, rng, snr_db=10.0),
        "radio-hard": lambda x: hard_radio(x, rng),
        "telephone": lambda x: channels.telephone(x, rng, snr_db=20.0),
    }
    for name in ("mulaw", "g722", "g726", "amrnb", "opus-6k", "mp3-8k"):
        c[name] = lambda x, codec=CODECS[name]: round_trip(x, codec)
    c["babble 5 dB"] = _babble(rng, pool)
    c["reverberant"] = lambda x: channels.reverberate(x, channels.room_impulse(0.7, rng))
    c["effort"] = lambda x: perturb.raise_effort(x, rng)
    c["emotional (sim.)"] = lambda x: perturb.emote(x, rng)
    return c


def embed_turns(backend: EmbeddingBackend, turns: list[np.ndarray]) -> np.ndarray:
    """Mean embedding of each turn's loud windows (the naive spotter's: 1.6 s every 0.8 s, none below -45 dBFS; a turn
    with none keeps its first window), L2-normalised."""
    windows, owner = [], []
    for i, x in enumerate(turns):
        _, loud = loud_windows(x)
        chosen = loud if len(loud) else np.pad(x[:WINDOW], (0, max(0, WINDOW - len(x))))[None].astype(np.float32)
        windows.append(chosen)
        owner += [i] * len(chosen)
    stacked = np.concatenate(windows)
    emb = np.concatenate([backend.embed(stacked[k : k + 128]) for k in range(0, len(stacked), 128)])
    sums = np.zeros((len(turns), emb.shape[1]))
    np.add.at(sums, np.asarray(owner), emb)
    return sums / np.linalg.norm(sums, axis=1, keepdims=True)


def trials(
    backend: EmbeddingBackend, enroll: dict[str, np.ndarray], tests: list[tuple[str, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    names = sorted(enroll)
    prints = embed_turns(backend, [enroll[n] for n in names])
    scores = embed_turns(backend, [t for _, t in tests]) @ prints.T
    truth = np.array([[s == n for n in names] for s, _ in tests])
    return scores[truth], scores[~truth]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models", nargs="+", default=["ge2e", "voxwatch-enc"], help="backends to compare (names or .onnx paths)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    require_data()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    english = [
        read_set(),
        words_set(heldout("speech_commands_v2_test"), 8, 4, 3, rng),
        words_set(heldout("dspspeech20"), 10, 4, 4, rng),
    ]
    sets = {
        "persian": words_set(heldout("commonvoice_fa"), 3, 2, 4, rng),
        "arabic": words_set(manifest(DATA, "arabic_speech_commands"), 20, 6, 6, rng),
        "ravdess": ravdess_set(),
    }
    backends = {m: load_backend(m, threads=2) for m in args.models}
    pool = [t for s in english for _, t in s[1]]
    tested: dict[str, list[Set]] = {}
    for name, degrade in conditions(rng, pool).items():
        tested[name] = [(enroll, [(k, degrade(t)) for k, t in tests]) for enroll, tests in english]
    extra = {
        f"persian {c}": [(sets["persian"][0], [(k, f(t)) for k, t in sets["persian"][1]])]
        for c, f in (("clean", lambda x: x), ("radio", lambda x: channels.radio(x, rng)))
    }
    extra |= {
        f"arabic {c}": [(sets["arabic"][0], [(k, f(t)) for k, t in sets["arabic"][1]])]
        for c, f in (("clean", lambda x: x), ("radio", lambda x: channels.radio(x, rng)))
    }
    extra["ravdess strong emotion"] = [sets["ravdess"]]
    tested |= extra
    n_tests = {c: sum(len(t) for _, t in s) for c, s in tested.items()}
    print(
        f"English held-out: {sum(len(e) for e, _ in english)} speakers, {n_tests['clean']} test turns per condition;"
        f" persian {len(sets['persian'][0])} speakers, arabic {len(sets['arabic'][0])}, ravdess {len(sets['ravdess'][0])}"
    )
    print(f"{'condition':<24} " + " | ".join(f"{m[-22:]:^21}" for m in args.models))
    print(f"{'':<24} " + " | ".join(f"{'EER%  minDCF minCllr':^21}" for _ in args.models))
    for name, groups in tested.items():
        cells = []
        for backend in backends.values():
            tar, non = (np.concatenate(p) for p in zip(*(trials(backend, e, t) for e, t in groups), strict=True))
            cells.append(f"{eer(tar, non)[0] * 100:5.2f} {min_dcf(tar, non)[0]:6.3f} {min_cllr(tar, non):6.3f} ")
        print(f"{name:<24} " + " | ".join(cells), flush=True)
    print(f"({time.perf_counter() - started:.0f} s, seed {args.seed})")


if __name__ == "__main__":
    main()
