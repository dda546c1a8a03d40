"""Demo audio on a fresh machine: synthetic voices (espeak-ng) for enrollment and for turn-taking streams.

Nothing is cached; espeak-ng writes into a temporary directory that is removed after each call, and its wav is
decoded by :func:`voxwatch.audio.load_audio` like any other input.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import channels
from .audio import RATE_HZ, load_audio
from .corpus import Turn, speech_onset_s
from .errors import AudioError, ModelError

_SILENCE_LEVEL = 1e-3  # |sample| below this at the edges of espeak output is trimmed
_SENTENCE_PAUSE_S = 0.3
_CHANNELS = ("broadcast", "radio", "telephone", "clean")


@dataclass(frozen=True)
class Voice:
    """A synthetic speaker: an espeak-ng voice (``language+variant``) at a given pitch (0-99) and speed (words/min)."""

    name: str
    espeak_voice: str
    pitch: int
    speed: int

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a voice needs a non-empty name")
        if not 0 <= self.pitch <= 99:
            raise ValueError(f"{self.name}: pitch must be in 0..99; got {self.pitch}")
        if not 80 <= self.speed <= 450:
            raise ValueError(f"{self.name}: speed must be in 80..450 words per minute; got {self.speed}")


VOICES: tuple[Voice, ...] = (
    Voice("Alice", "en-gb-scotland+Annie", pitch=50, speed=160),
    Voice("Bashir", "en-029+Andy", pitch=50, speed=160),
    Voice("Chiara", "en-us+f5", pitch=85, speed=150),
    Voice("Dmitri", "en-029+m3", pitch=40, speed=150),
    Voice("Esther", "en-gb-x-gbcwmd+klatt3", pitch=70, speed=160),
    Voice("Farid", "en-us+klatt2", pitch=35, speed=170),
    Voice("Grace", "en+f2", pitch=88, speed=145),
    Voice("Hiro", "en-gb+m7", pitch=15, speed=140),
)

SENTENCES: tuple[str, ...] = (
    # enrollment half
    "Light rain is expected along the northern coast by Thursday evening.",
    "The morning ferry to the island will leave twenty minutes late today.",
    "Please confirm the delivery address before the van leaves the depot.",
    "The city council approved a new budget for public libraries on Monday.",
    "Temperatures will rise slowly through the week, reaching twenty degrees by Sunday.",
    "All passengers for the evening train should wait on platform four.",
    "The warehouse inventory will be counted again at the end of the month.",
    "A new bicycle lane opens next to the river park this weekend.",
    "Our quarterly report shows steady growth in regional exports.",
    "Fog may reduce visibility on the mountain roads early tomorrow.",
    "The museum will extend its opening hours during the summer festival.",
    "Shipping containers are now being unloaded at the eastern terminal.",
    "The school board meets on Wednesday to discuss the new timetable.",
    "Farmers in the valley report an early start to the apple harvest.",
    "Please send the updated schedule to every team leader before noon.",
    "Strong winds are likely over the hills, so secure any loose equipment.",
    "The central bank left interest rates unchanged at its latest meeting.",
    "Road works on the main bridge will finish two days ahead of plan.",
    "The library has added three hundred new books to its science collection.",
    "A clear and cold night is forecast, with frost in sheltered places.",
    # stream half
    "Unit two, the supply truck has reached the north gate.",
    "We need four more pallets of bottled water at the second station.",
    "The weather service expects the storm to pass by midnight.",
    "Copy that, we will check the fuel levels and report back.",
    "The afternoon shift starts at two, please be on time.",
    "Traffic on the coastal highway is moving slowly near the tunnel.",
    "The generator at the field office has been repaired this morning.",
    "Can you repeat the last coordinates, the signal was weak?",
    "The convoy will stop at the rest area for thirty minutes.",
    "Local markets report higher prices for fresh vegetables this week.",
    "All teams should return to base before the sun goes down.",
    "The new radio batteries arrived with the morning delivery.",
    "Visibility at the airport has improved and flights are resuming.",
    "We have counted one hundred and twelve boxes in the storage room.",
    "The river level is stable and the bridge remains open.",
    "Please log every vehicle that enters the loading area.",
    "The press conference has been moved to the main hall at three.",
    "Sunny spells are expected in the south, with showers in the west.",
    "The maintenance crew will inspect the antenna tomorrow morning.",
    "Roger, we are heading back along the valley road now.",
)
_HALF = len(SENTENCES) // 2
ENROLLMENT_SENTENCES = SENTENCES[:_HALF]
STREAM_SENTENCES = SENTENCES[_HALF:]


def speak(voice: Voice, text: str) -> np.ndarray:
    """``text`` spoken by ``voice`` as 16 kHz mono float32, leading and trailing silence trimmed.

    Raises :class:`ModelError` when espeak-ng is missing or fails (e.g. an unknown voice).
    """
    if not text.strip():
        raise ValueError("text to speak is empty")
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ModelError("espeak-ng is not installed; install espeak-ng: apt-get install espeak-ng")
    command = [exe, "-v", voice.espeak_voice, "-s", str(voice.speed), "-p", str(voice.pitch), "--stdin", "-w"]
    with tempfile.TemporaryDirectory(prefix="voxwatch-synth-") as tmp:
        out = Path(tmp) / "speech.wav"
        try:
            subprocess.run([*command, str(out)], input=text.encode(), capture_output=True, check=True, timeout=60)
            samples = load_audio(out)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AudioError) as exc:
            detail = (getattr(exc, "stderr", None) or b"").decode(errors="replace").strip() or str(exc)
            raise ModelError(f"espeak-ng could not speak with voice {voice.espeak_voice!r} ({voice.name}): {detail}") from exc
    loud = np.flatnonzero(np.abs(samples) > _SILENCE_LEVEL)
    if not len(loud):
        raise ModelError(f"espeak-ng produced silence for voice {voice.espeak_voice!r} ({voice.name})")
    return np.clip(samples[loud[0] : loud[-1] + 1], -1.0, 1.0)


def enrollment_audio(voice: Voice, seconds: float = 20.0) -> np.ndarray:
    """Clean speech of ``voice`` from the enrollment sentences (in order, 0.3 s pauses), cut to ``seconds``."""
    if not seconds > 0:
        raise ValueError(f"seconds must be positive; got {seconds}")
    total = round(seconds * RATE_HZ)
    pause = np.zeros(round(_SENTENCE_PAUSE_S * RATE_HZ), np.float32)
    pieces: list[np.ndarray] = []
    length, index = 0, 0
    while length < total:
        speech = speak(voice, ENROLLMENT_SENTENCES[index % len(ENROLLMENT_SENTENCES)])
        pieces += [speech, pause]
        length += len(speech) + len(pause)
        index += 1
    return np.clip(np.concatenate(pieces)[:total], -1.0, 1.0)


def conversation(
    voices: list[Voice],
    seconds: float,
    rng: np.random.Generator,
    channel: str = "broadcast",
    gap_s: tuple[float, float] = (0.4, 1.5),
) -> tuple[np.ndarray, list[Turn]]:
    """A ``seconds`` long stream of ``voices`` taking turns, passed through ``channel``, and its ground truth.

    Each turn is 1-4 stream sentences by a random speaker other than the previous one, separated by silences
    drawn uniformly from ``gap_s``. ``channel`` is ``"broadcast"``, ``"radio"``, ``"telephone"`` or ``"clean"``. A turn cut by the
    end of the stream ends there; no turn starts in the last second.
    """
    if len({v.name for v in voices}) < 2 or len({v.name for v in voices}) != len(voices):
        raise ValueError(f"need at least two voices with distinct names; got {[v.name for v in voices]}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive; got {seconds}")
    if channel not in _CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; use one of {', '.join(_CHANNELS)}")
    low_s, high_s = gap_s
    if not 0 <= low_s <= high_s:
        raise ValueError(f"gap_s must be (low, high) with 0 <= low <= high; got {gap_s}")
    total = round(seconds * RATE_HZ)
    pause = np.zeros(round(_SENTENCE_PAUSE_S * RATE_HZ), np.float32)
    pieces: list[np.ndarray] = []
    turns: list[Turn] = []
    position, previous = 0, -1
    while True:
        gap = np.zeros(round(rng.uniform(low_s, high_s) * RATE_HZ), np.float32)
        pieces.append(gap)
        position += len(gap)
        if position > total - RATE_HZ:
            break
        speaker = int(rng.choice([i for i in range(len(voices)) if i != previous]))
        chosen = rng.choice(len(STREAM_SENTENCES), size=int(rng.integers(1, 5)), replace=False)
        speech = np.concatenate([part for i in chosen for part in (pause, speak(voices[speaker], STREAM_SENTENCES[i]))][1:])
        end = min(position + len(speech), total)
        turns.append(Turn(voices[speaker].name, position / RATE_HZ, end / RATE_HZ, position / RATE_HZ + speech_onset_s(speech)))
        pieces.append(speech)
        position += len(speech)
        previous = speaker
    audio = np.concatenate(pieces)[:total]
    audio = np.pad(audio, (0, total - len(audio)))
    if channel != "clean":
        audio = {"broadcast": channels.broadcast, "radio": channels.radio, "telephone": channels.telephone}[channel](audio, rng)
    return np.clip(audio, -1.0, 1.0).astype(np.float32), turns
