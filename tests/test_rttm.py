"""Search results for other tools: RTTM lines by the NIST convention, and pyannote annotations."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxwatch.records import Detection
from voxwatch.rttm import annotations, file_ids, rttm_line


def test_file_ids_are_unique_paths_below_the_searched_folder(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    sources = [str(archive / "a/show.wav"), str(archive / "b/show.mp3"), str(archive / "b/news 1.flac")]
    assert file_ids(sources, [str(archive)]) == dict(zip(sources, ["a/show", "b/show", "b/news_1"]))
    # the same name in one folder keeps its suffix; files searched one by one count from the folder they share
    twins = [str(archive / "a/show.wav"), str(archive / "a/show.mp3"), str(archive / "b/show.wav")]
    assert file_ids(twins, twins) == dict(zip(twins, ["a/show.wav", "a/show.mp3", "b/show"]))
    # over the whole index (no roots), from the folder all recordings share
    assert file_ids(sources[:2]) == dict(zip(sources[:2], ["a/show", "b/show"]))


def test_rttm_lines_have_ten_fields_without_spaces() -> None:
    line = rttm_line(Detection("x/show.wav", "Jane  Doe", 12.5, 20.25, 0.8, 4.0), "x/show")
    assert line.split(" ") == ["SPEAKER", "x/show", "1", "12.500", "7.750", "<NA>", "<NA>", "Jane_Doe", "<NA>", "<NA>"]


def test_pyannote_annotations_carry_the_same_turns() -> None:
    pytest.importorskip("pyannote.core", reason="pyannote.core is an optional extra")
    found = [Detection("a/show.wav", "Jane Doe", 1.0, 4.0, 0.8, 4.0), Detection("b/show.mp3", "Bob", 2.0, 3.5, 0.7, 3.0)]
    ids = file_ids([d.source for d in found], ["."])
    by_uri = annotations(found, ids)
    assert sorted(by_uri) == ["a/show", "b/show"]
    jane = by_uri["a/show"]
    assert jane.labels() == ["Jane Doe"] and jane.get_timeline()[0].duration == pytest.approx(3.0)
    ours = sorted(rttm_line(d, ids[d.source]) for d in found)
    renamed = [a.rename_labels({"Jane Doe": "Jane_Doe"}) for a in by_uri.values()]  # pyannote refuses spaces in RTTM too
    theirs = sorted(line for a in renamed for line in a.to_rttm().splitlines())
    assert ours == theirs
