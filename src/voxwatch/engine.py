"""The library front: enroll, embed, verify, identify, index, search and watch over one store and one set of models.

The CLI and the service are thin layers over :class:`Engine`; models load lazily, once, on first use. Recordings
are files or arrays of samples (:data:`~voxwatch.audio.AudioInput`); BLAS threads are limited while it computes.
"""

from __future__ import annotations

import dataclasses
import getpass
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Self

import numpy as np

from .asr import Transcriber, load_transcriber
from .audio import RATE_HZ, AudioInput, check_file, find_audio_files, load_audio, read_input, sha256_file
from .blas import blas_limited
from .channels import simulate
from .embedding import EmbeddingBackend, load_backend
from .errors import AudioError, EnrollmentError, ModelError, UsageError
from .indexing import CHUNK_S, merge_detections, segment_groups
from .named_transcripts import named_turns
from .parallel import each
from .pipeline import Event, Spotter, SpotterOptions
from .quality import Quality, measure
from .records import AudioChunk, Candidate, Detection, EnrollmentInfo, FileDone, NamedTurn, Segment, Verification
from .scoring import FIT_ONE, Calibration, Watchlist, has_shipped_calibration, l2_normalise
from .settings import Settings, default_db  # re-exported: Settings lived here
from .sinks import WatchSummary
from .snippets import Tap
from .sources import Source
from .store import IndexedRecording, Store, now
from .streams import Multiplexer
from .transcripts import Transcription, TranscriptOptions
from .vad import SileroVad, VoiceActivity
from .watch import Sink, Watch

__all__ = ["Analysis", "Engine", "SearchResult", "Settings", "Sink", "Watch", "WatchSummary", "default_db"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Analysis:
    """A recording reduced to speaker-homogeneous segments, plus its measured quality."""

    file: str
    segments: tuple[Segment, ...]
    speech_s: float  # net speech found by the VAD
    quality: Quality
    voiceprint: bool = False  # its segments were embedded for any channel band, so they make voiceprints

    def voice_split(self, min_similarity: float) -> str | None:
        """Where two stretches of at least 2 s of speech sound like different voices (similarity below
        ``min_similarity``), described in words; None when the recording sounds like one voice."""
        long = [s for s in self.segments if s.speech_s >= 2.0]
        for i, a in enumerate(long):
            for b in long[i + 1 :]:
                similarity = float(a.vector() @ b.vector())
                if similarity < min_similarity:
                    return f"speech at {a.start_s:.1f} s and {b.start_s:.1f} s differs: similarity {similarity:.2f} < {min_similarity:.2f}"
        return None

    def embedding(self) -> np.ndarray:
        """Speech-weighted mean of the segment embeddings."""
        if not self.segments:
            raise AudioError(f"{self.file}: no speech found")
        return l2_normalise(sum(s.speech_s * s.vector() for s in self.segments))


@dataclass(frozen=True)
class SearchResult:
    """Detections, the index entries they were found in, and the files that could not be read."""

    detections: list[Detection]
    recordings: list[IndexedRecording]
    errors: list[str]


class Engine:
    """One store, one embedding model, one VAD, one speech recogniser. A context manager: ``with Engine(settings) as
    engine:`` closes the store on the way out."""

    def __init__(
        self,
        settings: Settings | None = None,
        actor: str | None = None,
        backend: EmbeddingBackend | None = None,
        vad: VoiceActivity | None = None,
        transcriber: Transcriber | None = None,
    ):
        """``backend``, ``vad`` and ``transcriber`` may be passed in to share loaded models; otherwise they load on
        first use."""
        self.settings = settings or Settings()
        self.actor = actor or getpass.getuser()
        self.store = Store(self.settings.db)
        self._backend = backend
        self._vad = vad
        self._transcriber = transcriber

    @property
    def backend(self) -> EmbeddingBackend:
        if self._backend is None:
            self._backend = load_backend(self.settings.model, self.settings.threads)
        return self._backend

    @property
    def vad(self) -> VoiceActivity:
        if self._vad is None:
            self._vad = SileroVad(threads=self.settings.threads)
        return self._vad

    @property
    def transcriber(self) -> Transcriber:
        if self._transcriber is None:
            self._transcriber = load_transcriber(self.settings.asr_model, self.settings.threads)
        return self._transcriber

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building blocks ------------------------------------------------------------------------------------------

    @property
    def calibrated(self) -> bool:
        """Whether this engine's model has a calibration (a file in the settings, or a shipped one)."""
        return self.settings.calibration is not None or has_shipped_calibration(self.backend.name)

    def calibration(self, required: bool = True) -> Calibration:
        """The calibration of this engine's model: the settings' file, else the one shipped for the model.

        A model with neither is refused for decisions (:class:`ModelError` naming ``voxwatch calibrate``) unless an LLR
        threshold is given outright; with ``required`` False (scores that decide nothing) it borrows one."""
        model = self.backend.name
        if self.settings.calibration:
            calibration = Calibration.load(self.settings.calibration)
            if calibration.model not in (None, model):
                raise ModelError(
                    f"{self.settings.calibration}: a calibration of model {calibration.model!r}, not {model!r}; {FIT_ONE}"
                )
            return calibration
        if self.calibrated:
            return Calibration.default(model)
        if required and self.settings.spotter.threshold_llr is None:
            raise ModelError(
                f"model {model!r} has no calibration, so its scores are no likelihood ratios; {FIT_ONE} (or --threshold)"
            )
        return Calibration.borrowed(model)

    def threshold(self, bandwidth_hz: float = 0.0) -> float:
        """The LLR an alert or a search hit needs on a channel whose band ends at ``bandwidth_hz`` (0: unknown)."""
        return self.settings.spotter.threshold(self.calibration(), bandwidth_hz)

    def watchlist(self, names: list[str] | None = None) -> Watchlist:
        """The enrolled voices ``names`` (None: all that have voiceprints of this engine's model, with a warning
        naming those that have none, enrolled under another model)."""
        if not names:
            model = self.backend.name
            unwatched = {n: m for n, m in self.store.voiceprint_models().items() if model not in m}
            if unwatched:
                made = sorted(set().union(*unwatched.values()))
                log.warning(
                    "%d enrolled voice(s) have no voiceprint of model %s, only of %s, and are not watched: %s;"
                    " enroll them again (from the same recordings) or use --model %s",
                    len(unwatched),
                    model,
                    ", ".join(made),
                    ", ".join(sorted(unwatched)),
                    made[0],
                )
        found, matrix = self.store.voiceprint_matrix(self.backend.name, names or None)
        if not found:
            return Watchlist.empty(self.backend.dimension, self.calibration())
        return Watchlist(tuple(found), matrix, self.calibration())

    def spotter(
        self, watchlist: Watchlist | None = None, options: SpotterOptions | None = None, voiceprints: bool = False
    ) -> Spotter:
        wl = watchlist if watchlist is not None else Watchlist.empty(self.backend.dimension, self.calibration(required=False))
        return Spotter(self.backend, self.vad, wl, options or self.settings.spotter, voiceprints)

    def analyse(self, audio: AudioInput, *, rate_hz: int | None = None) -> Analysis:
        """Reduce a recording (up to 4 h; a file, or an array of samples at ``rate_hz``) to segments and quality
        figures."""
        clip = read_input(audio, rate_hz)
        return self.analyse_samples(clip.samples, clip.name)

    @blas_limited
    def embed(self, audio: AudioInput, rate_hz: int | None = None) -> np.ndarray:
        """The voice embedding of a recording of one voice (a file, or samples at ``rate_hz``): the L2-normalised,
        speech-weighted mean of its turns, as a float32 vector of the model's dimension. Raises
        :class:`AudioError` when it holds no speech."""
        return self.analyse(audio, rate_hz=rate_hz).embedding()

    def analyse_samples(self, samples: np.ndarray, name: str, voiceprint: bool = False) -> Analysis:
        """Reduce 16 kHz mono audio to speaker-homogeneous segments and quality figures; with ``voiceprint``, segments
        embedded to make a voiceprint, which must match the voice heard on any channel band."""
        spotter = self.spotter(voiceprints=voiceprint)
        quality = measure(samples)
        spotter.known_band(name, quality.bandwidth_hz)
        events: list[Event] = []
        step = RATE_HZ
        for start in range(0, len(samples), step):
            events += spotter.process([AudioChunk(name, start / RATE_HZ, samples[start : start + step])])
        speech_s = spotter.streams[name].speech_total_s if name in spotter.streams else 0.0
        events += spotter.finish(name)
        segments = tuple(e for e in events if isinstance(e, Segment))
        return Analysis(name, segments, round(speech_s, 2), quality, voiceprint)

    # -- voices ---------------------------------------------------------------------------------------------------

    @blas_limited
    def enroll(
        self,
        name: str,
        files: list[str | Path],
        note: str = "",
        labels: list[str] | None = None,
        progress: Callable[[FileDone], None] | None = None,
    ) -> list[EnrollmentInfo]:
        """Enroll ``name`` from recordings of that voice alone. All files are checked before anything is stored.

        ``labels`` name the recordings in the store and in errors (e.g. an upload's original file name); ``progress``
        hears of each recording as it has been analysed."""
        name = name.strip()
        if not name or len(name) > 100 or any(c in name for c in "\n\r\t"):
            raise UsageError(f"invalid voice name {name!r}: 1 to 100 characters, no tabs or line breaks")
        if not files:
            raise UsageError("enroll needs at least one recording")
        if labels is not None and len(labels) != len(files):
            raise UsageError(f"{len(labels)} labels for {len(files)} recordings")

        def check(job: tuple[int, str | Path, str]) -> tuple[EnrollmentInfo, dict[str, np.ndarray], float]:
            _, path, label = job
            try:
                check_file(path)
            except AudioError as exc:
                raise AudioError(str(exc).replace(str(path), label)) from exc
            digest = sha256_file(path)
            owner, has_model = self.store.enrolled_as(digest, self.backend.name)
            if owner is not None and (owner != name or has_model):
                raise EnrollmentError(f"{label}: this recording is already enrolled for {owner!r}")
            try:
                samples = load_audio(path)
            except AudioError as exc:
                raise AudioError(str(exc).replace(str(path), label)) from exc
            analysis = self.analyse_samples(samples, label, voiceprint=True)
            self._check_enrollment(analysis)
            consistency = float(
                np.average([s.consistency for s in analysis.segments], weights=[s.speech_s for s in analysis.segments])
            )
            info = EnrollmentInfo(
                name,
                label,
                digest,
                analysis.speech_s,
                analysis.quality.snr_db,
                round(consistency, 4),
                note,
                now(),
                self.backend.name,
            )
            return info, self.condition_embeddings(samples, analysis, seed=int(digest[:8], 16)), analysis.quality.duration_s

        jobs = [(i, path, label) for i, (path, label) in enumerate(zip(files, labels or [str(f) for f in files]))]
        checked = {}
        for (i, _, label), (info, prints, duration_s) in each(check, jobs, self.settings.workers):
            checked[i] = (info, prints)
            if progress:
                progress(FileDone(label, len(checked), len(files), duration_s))
        items = [checked[i] for i in range(len(jobs))]
        self.store.add_enrollments(name, items, self.actor)
        return [info for info, _ in items]

    def condition_embeddings(self, samples: np.ndarray, analysis: Analysis, seed: int = 0) -> dict[str, np.ndarray]:
        """One voiceprint embedding of the recording per enrollment condition (the clean one from ``analysis`` when it
        was made for voiceprints)."""
        rng = np.random.default_rng(seed)
        prints = {}
        for condition in self.settings.enroll_conditions:
            if condition == "clean":
                heard = analysis if analysis.voiceprint else self.analyse_samples(samples, analysis.file, voiceprint=True)
            else:
                heard = self.analyse_samples(simulate(samples, condition, rng), analysis.file, voiceprint=True)
            if heard.segments:
                prints[condition] = heard.embedding()
        return prints

    def _check_enrollment(self, analysis: Analysis) -> None:
        if analysis.speech_s < self.settings.min_enroll_speech_s:
            raise EnrollmentError(
                f"{analysis.file}: only {analysis.speech_s:.1f} s of net speech; at least {self.settings.min_enroll_speech_s:.1f} s needed"
            )
        if not analysis.segments:
            raise EnrollmentError(f"{analysis.file}: no stretch of speech long enough to make a voiceprint from")
        split = analysis.voice_split(self.settings.min_same_speaker)
        if split is not None:
            raise EnrollmentError(f"{analysis.file}: sounds like more than one speaker ({split}); trim it to one voice")

    def forget(self, name: str) -> dict[str, int]:
        return self.store.forget(name, self.actor)

    @blas_limited
    def verify(self, audio: AudioInput, speaker: str, *, rate_hz: int | None = None) -> Verification:
        """Score a recording (a file, or samples at ``rate_hz``) against one enrolled voice."""
        analysis = self.analyse(audio, rate_hz=rate_hz)
        watchlist = self.watchlist([speaker])
        scores, llrs = watchlist.llrs(analysis.embedding()[None], analysis.speech_s, analysis.quality.bandwidth_hz)
        llr = float(llrs[0, 0])
        self.store.audit(self.actor, "verify", speaker, analysis.file)
        return Verification(
            analysis.file,
            speaker,
            round(float(scores[0, 0]), 4),
            round(llr, 3),
            llr >= self.settings.verify_threshold_llr,
            analysis.speech_s,
        )

    @blas_limited
    def identify(self, audio: AudioInput, top: int = 5, *, rate_hz: int | None = None) -> list[Candidate]:
        """Enrolled voices ranked by LLR for a recording (a file, or samples at ``rate_hz``); only those above the
        verification threshold ("none of the above" is empty)."""
        analysis = self.analyse(audio, rate_hz=rate_hz)
        watchlist = self.watchlist()
        if not watchlist.names:
            raise UsageError("no voices are enrolled; use 'voxwatch enroll' first")
        scores, llrs = watchlist.llrs(analysis.embedding()[None], analysis.speech_s, analysis.quality.bandwidth_hz)
        order = np.argsort(-llrs[0])[:top]
        self.store.audit(self.actor, "identify", "*", analysis.file)
        return [
            Candidate(watchlist.names[i], round(float(scores[0, i]), 4), round(float(llrs[0, i]), 3))
            for i in order
            if llrs[0, i] >= self.settings.verify_threshold_llr
        ]

    # -- archives -------------------------------------------------------------------------------------------------

    @blas_limited
    def index(
        self,
        paths: list[str],
        progress: Callable[[FileDone], None] | None = None,
        ray: str | None = None,
        chunk_s: float = CHUNK_S,
    ) -> tuple[list[IndexedRecording], list[str]]:
        """Index recordings once (by content hash); returns the index entries and the errors of files that failed.

        Files are hashed as they are reached and segmented by ``settings.workers`` processes (or, with ``ray``, a
        cluster's address, by Ray tasks, a file longer than ``chunk_s`` split into time ranges), each running several
        files at once as streams; ``progress`` hears of each file as it finishes."""
        files = [str(f) for f in find_audio_files(paths)]
        entries: dict[str, IndexedRecording] = {}
        digests: dict[str, str] = {}
        errors: list[str] = []

        def report(path: str, duration_s: float, error: str | None = None) -> None:
            if error is not None:
                errors.append(error)
            if progress:
                progress(FileDone(path, len(entries) + len(errors), len(files), round(duration_s, 3), error))

        def unindexed() -> Iterator[str]:
            for f in files:
                try:
                    digests[f] = sha256_file(f)
                except OSError as exc:
                    report(f, 0.0, f"{f}: cannot read ({exc.strerror})")
                    continue
                found = self.store.indexed(digests[f], self.backend.name)
                if found is None:
                    yield f
                else:
                    entries[f] = dataclasses.replace(found, path=f)
                    report(f, found.duration_s)

        group = max(1, min(self.settings.max_parallel_files, len(files) // (4 * max(1, self.settings.workers))))
        waiting = unindexed()
        groups = iter(lambda: list(islice(waiting, group)), [])
        for path, duration_s, segments, error in self._segment_files(groups, ray, chunk_s):
            if error is None:
                entries[path] = self.store.add_recording(path, digests[path], self.backend.name, duration_s, segments)
            report(path, duration_s, error)
        return [entries[f] for f in files if f in entries], errors

    def _segment_files(
        self, groups: Iterable[Sequence[str]], ray: str | None = None, chunk_s: float = CHUNK_S
    ) -> Iterator[tuple[str, float, list[Segment], str | None]]:
        options = dataclasses.replace(self.settings.spotter, hop_s=self.settings.index_hop_s)
        return segment_groups(
            groups, lambda: self.spotter(options=options), self.settings.model, options, self.settings.workers, ray, chunk_s
        )

    @blas_limited
    def search(
        self,
        paths: list[str] | None = None,
        speakers: list[str] | None = None,
        threshold_llr: float | None = None,
        progress: Callable[[FileDone], None] | None = None,
        language: str | None = None,
    ) -> SearchResult:
        """Where enrolled voices speak: in ``paths`` (indexed first where needed) or in everything indexed so far;
        with ``language`` (ISO 639-1), only where they speak that language (identified on each hit's audio).

        Over the whole index, each recording's voice summaries are scored first; only recordings where a watched
        voice may speak have their segments scored."""
        watchlist = self.watchlist(speakers)
        if not watchlist.names:
            raise UsageError("no voices are enrolled; use 'voxwatch enroll' first")
        calibration = self.calibration()

        def threshold(band: Calibration) -> float:  # for scores calibrated by ``band`` (one band's calibration)
            return self.settings.spotter.threshold(band, 0.0) if threshold_llr is None else threshold_llr

        if paths:
            recordings, errors = self.index(paths, progress)
        else:
            ids, centroids, owners = self.store.index_summaries(self.backend.name, self.backend.dimension)
            hopeful_rows = np.zeros(len(owners), bool)
            for band in ("wideband", "narrowband"):  # a summary may come from either band's channel (and encoder)
                scored = calibration.band(band)
                floor = scored.lowest_score(threshold(scored) - self.settings.search_prefilter_llr)
                hopeful_rows |= (watchlist.scores(centroids, band) >= floor).any(axis=1)
            hopeful = np.unique(owners[hopeful_rows])
            recordings, errors = self.store.recordings_by_id([int(ids[k]) for k in hopeful]), []
        found: list[Detection] = []
        for rec in recordings:
            if not len(rec.spans):
                continue
            vectors = rec.vectors.astype(np.float32)
            narrow = calibration.narrow(vectors, rec.bandwidth_hz)  # a band-routed model's segments: by their encoder
            scores, needed = np.zeros((len(vectors), len(watchlist.names))), np.zeros(len(vectors))
            for rows, band in ((narrow, "narrowband"), (~narrow, "wideband")):
                scores[rows] = watchlist.scores(vectors[rows], band)
                needed[rows] = threshold(calibration.band(band))
            llrs = calibration.llr_by_band(scores, rec.spans[:, 2][:, None], narrow)
            for j, name in enumerate(watchlist.names):
                hits = np.flatnonzero(llrs[:, j] >= needed)
                found += merge_detections(
                    [
                        Detection(
                            rec.path, name, float(rec.spans[i, 0]), float(rec.spans[i, 1]), float(scores[i, j]), float(llrs[i, j])
                        )
                        for i in hits
                    ],
                    self.settings.search_merge_gap_s,
                )
        self.store.audit(self.actor, "search", ",".join(watchlist.names), f"{len(recordings)} recordings")
        found.sort(key=lambda d: (d.source, d.start_s, d.speaker))
        if language:
            found = self._spoken_in(found, language, errors)
        return SearchResult(found, recordings, errors)

    def _spoken_in(self, detections: list[Detection], language: str, errors: list[str]) -> list[Detection]:
        """The detections (sorted by source) whose audio is in ``language``; a recording that can no longer be read
        adds an error and keeps none of its detections."""
        kept: list[Detection] = []
        source, samples = None, np.zeros(0, np.float32)
        for d in detections:
            if d.source != source:
                source = d.source
                try:
                    samples = load_audio(d.source)
                except AudioError as exc:
                    errors.append(f"{exc} (needed to tell the language spoken)")
                    samples = np.zeros(0, np.float32)
            turn = samples[int(d.start_s * RATE_HZ) : int(d.end_s * RATE_HZ)]
            if len(turn) >= RATE_HZ // 4 and self.transcriber.identify_language(turn)[0] == language:
                kept.append(d)
        return kept

    def transcribe(self, path: str | Path, progress: Callable[[float], None] | None = None) -> Iterator[NamedTurn]:
        """A named transcript of a recording, turn by turn as it is read: who spoke (an enrolled voice when its LLR
        passes the search threshold, else ``unknown speaker N``) and what was said in which language. ``progress``
        hears the fraction of the recording read so far."""
        samples = load_audio(path)
        self.store.audit(self.actor, "transcribe", ",".join(self.watchlist().names) or "*", str(path))
        return named_turns(self, samples, str(path), progress)

    # -- live -----------------------------------------------------------------------------------------------------

    @blas_limited
    def watch(
        self,
        sources: list[Source],
        sinks: Iterable[Sink] = (),
        speakers: list[str] | None = None,
        transcripts: TranscriptOptions | None = None,
    ) -> WatchSummary:
        """Watch sources until they all end; every alert is committed to the store before sinks see it. With
        ``transcripts``, each alert is followed by the transcript of its turn (see :mod:`voxwatch.transcripts`)."""
        if not self.watchlist(speakers).names:
            raise UsageError("no voices are enrolled; use 'voxwatch enroll' first")
        transcription = None
        if transcripts is not None:
            taps = {s.name: Tap(s, keep_s=transcripts.keep_s) for s in sources}
            sources = list(taps.values())
            transcription = Transcription(self.transcriber, lambda name, t0, t1: taps[name].cut(t0, t1), transcripts)
        summary = WatchSummary()
        Watch(self, Multiplexer(sources), [*sinks, summary], speakers, transcription=transcription).run()
        return summary
