"""Progress of long batches: each file reported as it finishes, files hashed as they are reached, and the terminal
line and JSON lines the command line makes of it. Tone test doubles: no models needed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

import voxwatch.engine
from voxwatch.audio import write_wav
from voxwatch.cli_progress import Progress
from voxwatch.records import FileDone
from voxwatch.testing import compose_tones, tone_engine, tone_voice
from voxwatch.trials import Trial, score_trials


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_index_reports_each_file_as_it_finishes_and_hashes_as_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "archive"
    seconds = [4.0, 6.0, 3.0, 5.0, 4.0]
    for i, s in enumerate(seconds):
        write_wav(archive / f"show{i}.wav", compose_tones([(300.0 + 40 * i, s)], seed=i))
    engine = tone_engine(tmp_path)
    events: list[tuple[str, object]] = []
    hash_file = voxwatch.engine.sha256_file
    monkeypatch.setattr(voxwatch.engine, "sha256_file", lambda p: events.append(("hash", Path(p).name)) or hash_file(p))
    entries, errors = engine.index([str(archive)], lambda f: events.append(("done", f)))
    assert not errors and len(entries) == 5
    done = [f for kind, f in events if kind == "done"]
    assert [(f.done, f.total) for f in done] == [(i, 5) for i in range(1, 6)]  # type: ignore[attr-defined]
    assert sorted(f.duration_s for f in done) == pytest.approx(sorted(seconds), abs=0.05)  # type: ignore[attr-defined]
    kinds = [kind for kind, _ in events]
    assert kinds.index("done") < len(kinds) - 1 - kinds[::-1].index("hash"), "a file finished before the last was hashed"
    events.clear()
    engine.index([str(archive)], lambda f: events.append(("done", f)))  # already indexed: reported as found
    assert [f.done for kind, f in events if kind == "done"] == [1, 2, 3, 4, 5]  # type: ignore[attr-defined]
    engine.close()


def test_enroll_reports_each_recording(tmp_path: Path) -> None:
    engine = tone_engine(tmp_path)
    files = [write_wav(tmp_path / f"ref{i}.wav", tone_voice(440.0, 4.0, seed=i)) for i in range(3)]
    heard: list[FileDone] = []
    engine.enroll("a4", files, progress=heard.append)
    assert [(f.file, f.done, f.total) for f in heard] == [(str(f), i, 3) for i, f in enumerate(files, 1)]
    assert all(abs(f.duration_s - 4.0) < 0.05 for f in heard)
    engine.close()


def test_terminal_line_shows_count_hours_and_time_left() -> None:
    terminal = Terminal()
    progress = Progress("indexing", as_json=False, stream=terminal)
    progress.audio_s = 2 * 3600.0
    line = progress.line(FileDone("x.wav", 3, 12, 1800.0), elapsed_s=90.0)
    assert line.startswith("indexing [######..................] 3/12 files, 2.00 h of audio, 1:30 elapsed, ETA 4:30")
    with progress:
        progress(FileDone("y.wav", 4, 12, 60.0))
    assert terminal.getvalue().startswith("\r\033[Kindexing") and terminal.getvalue().endswith("\n")
    plain = io.StringIO()  # not a terminal: nothing drawn
    with Progress("indexing", as_json=False, stream=plain) as quiet:
        quiet(FileDone("y.wav", 4, 12, 60.0))
    assert plain.getvalue() == ""


def test_json_progress_is_one_line_per_file() -> None:
    out = io.StringIO()
    with Progress("indexing", as_json=True, stream=out) as progress:
        progress(FileDone("a.wav", 1, 2, 3.5))
        progress(FileDone("b.wav", 2, 2, 0.0, "b.wav: cannot open as audio"))
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert lines == [
        {"type": "progress", "file": "a.wav", "done": 1, "total": 2, "duration_s": 3.5, "error": None},
        {"type": "progress", "file": "b.wav", "done": 2, "total": 2, "duration_s": 0.0, "error": "b.wav: cannot open as audio"},
    ]


def test_workers_analyse_recordings_side_by_side_with_the_same_results(tmp_path: Path) -> None:
    files = [write_wav(tmp_path / f"ref{i}.wav", tone_voice(440.0 + 30 * i, 4.0, seed=i)) for i in range(4)]
    trials = [Trial(int(a == b), str(files[a]), str(files[b]), "", "") for a in (0, 1) for b in (0, 1, 2, 3) if a != b or a]
    results = {}
    for workers in (1, 3):
        (tmp_path / str(workers)).mkdir()
        engine = tone_engine(tmp_path / str(workers), workers=workers)
        heard: list[FileDone] = []
        engine.enroll("a4", files, progress=heard.append)
        assert sorted(f.done for f in heard) == [1, 2, 3, 4] and {f.file for f in heard} == set(map(str, files))
        scored = score_trials(engine, trials, heard.append)
        assert len(heard) == 4 + 2 + 4
        results[workers] = (engine.store.voiceprint_matrix("tones", None)[1], *scored)
        engine.close()
    for one, three in zip(results[1], results[3]):
        np.testing.assert_array_equal(one, three)
