"""Search results as files other tools read: RTTM lines (NIST convention) and, when ``pyannote.core`` is installed,
pyannote ``Annotation`` objects."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import UsageError
from .records import Detection, NamedTurn


def _field(text: str) -> str:
    """RTTM fields are separated by spaces, so none may hold one."""
    return re.sub(r"\s+", "_", text.strip())


def file_ids(sources: Iterable[str], roots: Sequence[str] = ()) -> dict[str, str]:
    """One unique file id per source: its path relative to the folder the searched ``roots`` share (a root that is a
    file counts as its folder; without roots, the folder the sources share), without the audio suffix unless two
    sources would then look alike, with whitespace as ``_``."""
    paths = {s: Path(s).absolute() for s in sorted(set(sources))}
    if not paths:
        return {}
    bases = [Path(r).absolute() if Path(r).is_dir() else Path(r).absolute().parent for r in roots]
    base = Path(os.path.commonpath(bases + [p.parent for p in paths.values()]))
    relative = {s: p.relative_to(base) for s, p in paths.items()}
    stems = Counter(_field(r.with_suffix("").as_posix()) for r in relative.values())
    ids = {}
    for source, r in relative.items():
        stem = _field(r.with_suffix("").as_posix())
        ids[source] = stem if stems[stem] == 1 else _field(r.as_posix())
    return ids


def rttm_line(turn: Detection | NamedTurn, file_id: str) -> str:
    """One RTTM ``SPEAKER`` line: file id, channel 1, onset, duration, and the speaker's name (spaces as ``_``)."""
    duration = turn.end_s - turn.start_s
    return f"SPEAKER {file_id} 1 {turn.start_s:.3f} {duration:.3f} <NA> <NA> {_field(turn.speaker)} <NA> <NA>"


def annotations(detections: Iterable[Detection], ids: dict[str, str]) -> dict[str, Any]:
    """One ``pyannote.core.Annotation`` per file id (``uri``), each detection a track labelled with the speaker."""
    try:
        from pyannote.core import Annotation, Segment
    except ImportError as exc:
        raise UsageError("pyannote export needs pyannote.core: pip install 'voxwatch[pyannote]'") from exc
    out: dict[str, Any] = {}
    for track, d in enumerate(detections):
        uri = ids[d.source]
        annotation = out.setdefault(uri, Annotation(uri=uri))
        annotation[Segment(d.start_s, d.end_s), track] = d.speaker
    return out
