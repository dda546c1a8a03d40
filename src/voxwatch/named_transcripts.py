"""Named transcripts of recordings: speech turns, who spoke each (an enrolled voice by the same calibrated decision as
``search``, or an unknown speaker numbered consistently within the recording), and what was said in which language.
Turns come out one by one as the recording is read, and the formats they are written in: text, SRT, WebVTT (RTTM
lines come from :mod:`.rttm`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from .audio import RATE_HZ
from .quality import band_edge_hz
from .records import AudioChunk, NamedTurn, Segment, TimedText
from .scoring import l2_normalise

if TYPE_CHECKING:
    from .engine import Engine

PAD_S = 0.25  # audio kept around a turn for the recogniser: the VAD's windows start and end a little inside speech


class UnknownVoices:
    """Numbers the voices of one recording that match no enrolled voice: a turn joins the unknown speaker whose mean
    embedding it is most like, if at least ``min_similarity``; otherwise it is a new one."""

    def __init__(self, min_similarity: float):
        self.min_similarity = min_similarity
        self._sums: list[np.ndarray] = []

    def label(self, segment: Segment) -> str:
        e = segment.vector() * segment.speech_s
        if self._sums:
            similarity = np.stack([l2_normalise(s) for s in self._sums]) @ l2_normalise(e)
            best = int(np.argmax(similarity))
            if similarity[best] >= self.min_similarity:
                self._sums[best] = self._sums[best] + e
                return f"unknown speaker {best + 1}"
        self._sums.append(e)
        return f"unknown speaker {len(self._sums)}"


def named_turns(
    engine: Engine, samples: np.ndarray, name: str, progress: Callable[[float], None] | None = None
) -> Iterator[NamedTurn]:
    """The turns of 16 kHz mono ``samples`` in order, each yielded as soon as it has ended and been transcribed;
    ``progress`` hears which fraction of the recording has been read."""
    watchlist = engine.watchlist()
    spotter = engine.spotter()
    spotter.known_band(name, band_edge_hz(samples))  # a whole recording: its band is measured on all of it
    unknown = UnknownVoices(engine.settings.min_same_speaker)
    transcriber = engine.transcriber

    def turn(segment: Segment) -> NamedTurn:
        speaker, llr, enrolled = "", float("-inf"), False
        if watchlist.names:
            _, llrs = watchlist.llrs(segment.vector()[None], segment.speech_s, segment.bandwidth_hz)
            top = int(np.argmax(llrs[0]))
            llr = float(llrs[0, top])
            enrolled = llr >= engine.threshold(segment.bandwidth_hz)
            speaker = watchlist.names[top] if enrolled else ""
        speaker = speaker or unknown.label(segment)
        start = max(0.0, segment.start_s - PAD_S)
        end = min(len(samples) / RATE_HZ, segment.end_s + PAD_S)
        heard = transcriber.transcribe(samples[int(start * RATE_HZ) : int(end * RATE_HZ)])
        return NamedTurn(
            name,
            segment.start_s,
            segment.end_s,
            speaker,
            enrolled,
            round(llr, 3) if np.isfinite(llr) else 0.0,
            heard.language,
            heard.language_probability,
            heard.text,
            tuple(TimedText(round(s.start_s + start, 2), round(s.end_s + start, 2), s.text) for s in heard.segments),
        )

    for offset in range(0, len(samples), RATE_HZ):
        events = spotter.process([AudioChunk(name, offset / RATE_HZ, samples[offset : offset + RATE_HZ])])
        for segment in (e for e in events if isinstance(e, Segment)):
            yield turn(segment)
        if progress is not None:
            progress(min(len(samples), offset + RATE_HZ) / len(samples))
    for segment in (e for e in spotter.finish(name) if isinstance(e, Segment)):
        yield turn(segment)


# -- formats --------------------------------------------------------------------------------------------------------


def _stamp(seconds: float, separator: str) -> str:
    ms = round(max(0.0, seconds) * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def as_text(turn: NamedTurn) -> str:
    return f"[{_stamp(turn.start_s, '.')} - {_stamp(turn.end_s, '.')}] {turn.speaker} ({turn.language}): {turn.text}"


def as_srt(turn: NamedTurn, number: int) -> str:
    """One SRT cue (numbered from 1), with a blank line after it."""
    return f"{number}\n{_stamp(turn.start_s, ',')} --> {_stamp(turn.end_s, ',')}\n{turn.speaker}: {turn.text}\n"


def as_vtt(turn: NamedTurn) -> str:
    """One WebVTT cue with the speaker as its voice span; the file starts with ``WEBVTT`` and a blank line."""
    who = turn.speaker.replace(">", "")
    return f"{_stamp(turn.start_s, '.')} --> {_stamp(turn.end_s, '.')}\n<v {who}>{turn.text}\n"
