"""Which speech of ../shared/data the encoder trains on, and which is held apart for evaluation and calibration.

The split is fixed once in ``training/speakers.tsv`` (committed): every labelled speaker of a folder whose licence
allows training a shipped model is either ``train`` or ``heldout``; folders that are evaluation-only (RAVDESS) or
used by the tests and benchmarks as they are (LibriSpeech test-other, Arabic speech commands, FSDD, AMI, CMU ARCTIC,
Dutch) are held out whole. Nothing held out is ever read by the training, labelled or not.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from pathlib import Path

from voxwatch.corpus import manifest

SPLIT_FILE = Path(__file__).with_name("speakers.tsv")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Folders whose licence allows training a shipped model, and the share of their speakers held apart.
TRAINABLE = {
    "resemblyzer/audio_data/librispeech_train-clean-100": 0.5,  # CC BY 4.0
    "speech_commands_v2_test": 0.5,  # CC BY 4.0
    "dspspeech20": 0.3,  # MIT
    "commonvoice_fa": 0.3,  # CC0
}
# Real noises (no speech) mixed into training audio: CC BY 4.0 (Arabic Speech Commands), MIT (audiomentations),
# SiSEC/pyroomacoustics kitchen noise.
NOISES = (
    "arabic_speech_commands/background_noise/boiler.flac",
    "arabic_speech_commands/background_noise/washing_machine.flac",
    "audiomentations_noise_ir/demo/background_noises/hens.ogg",
    "audiomentations_noise_ir/demo/background_noises/sheep.ogg",
    "audiomentations_noise_ir/demo/perfect-alley1.ogg",
    "pyroomacoustics_samples/examples/input_samples/doing_the_dishes.flac",
)
IMPULSE_RESPONSES = ("audiomentations_noise_ir/demo/ir/impulse_response_0.flac", "audiomentations_noise_ir/demo/ir/rir48000.flac")


def _manifest(root: Path) -> dict[str, dict[str, list[Path]]]:
    """folder → speaker → files, for the single-speaker files of the trainable folders."""
    found: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    with open(root / "MANIFEST.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            folder = next((k for k in TRAINABLE if row["local_path"].startswith(k + "/")), None)
            if folder and row["speaker_id"] not in ("MULTI", "NONE"):
                found[folder][row["speaker_id"]].append(root / row["local_path"])
    return found


def make_split(root: Path = DATA) -> list[tuple[str, str, str]]:
    """(folder, speaker, role) rows: a speaker is held out when the SHA-1 of its id falls below the folder's share."""
    rows = []
    for folder, speakers in sorted(_manifest(root).items()):
        for speaker in sorted(speakers):
            h = int(hashlib.sha1(f"{folder}/{speaker}".encode()).hexdigest()[:8], 16) / 2**32
            rows.append((folder, speaker, "heldout" if h < TRAINABLE[folder] else "train"))
    return rows


def read_split(path: Path = SPLIT_FILE) -> dict[tuple[str, str], str]:
    """(folder, speaker) → ``train`` or ``heldout``, from the committed list."""
    with open(path, newline="") as f:
        return {(r["folder"], r["speaker"]): r["role"] for r in csv.DictReader(f, delimiter="\t")}


def heldout(folder: str, root: Path = DATA) -> dict[str, list[Path]]:
    """The speakers of any ``folder`` of the data held apart in the split, with their files (benchmarks, tests)."""
    split = read_split()
    return {k: v for k, v in manifest(root, folder).items() if split.get((folder, k)) == "heldout"}


def speakers(role: str, root: Path = DATA) -> dict[str, list[Path]]:
    """``folder/speaker`` → its files, for every speaker of the trainable folders with ``role`` in the split."""
    split = read_split()
    return {
        f"{folder}/{speaker}": sorted(files)
        for folder, by_speaker in _manifest(root).items()
        for speaker, files in by_speaker.items()
        if split.get((folder, speaker)) == role
    }


if __name__ == "__main__":
    with open(SPLIT_FILE, "w") as out:
        out.write("folder\tspeaker\trole\n")
        out.writelines(f"{a}\t{b}\t{c}\n" for a, b, c in make_split())
    print(f"wrote {SPLIT_FILE}")
