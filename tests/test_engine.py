"""Enroll, verify, identify, index, search and forget on real LibriSpeech speech."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import largest

from voxwatch import AudioError, Engine, EnrollmentError, Settings, UnknownSpeakerError, UsageError, load_audio
from voxwatch.audio import RATE_HZ, write_wav
from voxwatch.channels import radio
from voxwatch.corpus import compose
from voxwatch.embedding import DEFAULT_MODEL
from voxwatch.records import AudioChunk, Segment
from voxwatch.scoring import NARROWBAND_HZ, band_name


@pytest.fixture
def enrolled(engine: Engine, readers: dict[str, list[Path]]) -> dict[str, list[Path]]:
    """Three readers enrolled from their 3 largest utterances; the rest of their utterances are returned."""
    rest = {}
    for name in ["1688", "2033", "3005"]:
        files = largest(readers[name], 3)
        engine.enroll(name, [str(f) for f in files], note="LibriSpeech test-other, CC BY 4.0")
        rest[name] = [f for f in readers[name] if f not in files]
    return rest


def test_enrollment_keeps_provenance_and_quality(engine: Engine, enrolled: dict[str, list[Path]]) -> None:
    speakers = {s.name: s for s in engine.store.speakers()}
    assert set(speakers) == {"1688", "2033", "3005"}
    assert all(s.enrollments == 3 and s.speech_s > 15 for s in speakers.values())
    infos = engine.store.enrollments("2033")
    assert all(len(i.sha256) == 64 and i.note.startswith("LibriSpeech") and i.model == DEFAULT_MODEL for i in infos)
    assert all(i.snr_db > 10 and 0.7 < i.consistency <= 1 for i in infos)
    assert [a["action"] for a in engine.store.audit_log()].count("enroll") == 9


def test_verify_accepts_the_same_reader_and_rejects_others(
    engine: Engine, enrolled: dict[str, list[Path]], readers: dict[str, list[Path]]
) -> None:
    same = [engine.verify(f, "2033") for f in largest(enrolled["2033"], 3)]
    assert all(v.accepted for v in same), same
    others = [engine.verify(f, "2033") for name in ("2414", "367", "533") for f in largest(readers[name], 2)]
    assert not any(v.accepted for v in others), others
    assert min(v.llr for v in same) > max(v.llr for v in others)


def test_identify_ranks_the_right_voice_or_none(
    engine: Engine, enrolled: dict[str, list[Path]], readers: dict[str, list[Path]]
) -> None:
    for name in ("1688", "3005"):
        ranked = engine.identify(largest(enrolled[name], 1)[0])
        assert ranked and ranked[0].speaker == name
    stranger = engine.identify(largest(readers["2609"], 1)[0])
    assert stranger == [], "nobody enrolled fits: none of the above"


def test_enrollment_refuses_short_silent_multi_speaker_and_duplicate(
    tmp_path: Path, engine: Engine, readers: dict[str, list[Path]]
) -> None:
    short = min(readers["3005"], key=lambda f: f.stat().st_size)
    with pytest.raises(EnrollmentError, match="net speech"):
        engine.enroll("x", [short])
    silent = write_wav(tmp_path / "silent.wav", np.zeros(RATE_HZ * 5, np.float32))
    with pytest.raises(EnrollmentError, match="net speech"):
        engine.enroll("x", [silent])
    two = np.concatenate([load_audio(largest(readers["2414"], 1)[0]), load_audio(largest(readers["533"], 1)[0])])
    with pytest.raises(EnrollmentError, match="more than one speaker"):
        engine.enroll("x", [write_wav(tmp_path / "two.wav", two)])
    good = largest(readers["2414"], 1)[0]
    engine.enroll("a", [good])
    with pytest.raises(EnrollmentError, match="already enrolled for 'a'"):
        engine.enroll("b", [good])
    with pytest.raises(AudioError, match="no such file"):
        engine.enroll("c", [tmp_path / "missing.flac"])
    assert [s.name for s in engine.store.speakers()] == ["a"], "failed enrollments store nothing"


def test_search_finds_readers_in_a_long_recording_and_in_the_index(
    tmp_path: Path, engine: Engine, enrolled: dict[str, list[Path]], impostors: dict[str, list[Path]], rng: np.random.Generator
) -> None:
    parts = [(n, load_audio(f)) for n in enrolled for f in largest(enrolled[n], 2)]
    parts += [(None, load_audio(files[0])) for files in list(impostors.values())[:8]]
    order = rng.permutation(len(parts))
    audio, turns = compose([parts[i] for i in order], rng)
    recording = write_wav(tmp_path / "archive.wav", audio)
    result = engine.search([str(tmp_path)], ["2033"])
    found = result.detections
    assert result.errors == [] and [r.path for r in result.recordings] == [str(recording)]
    truth = [t for t in turns if t.speaker == "2033"]
    hits = [t for t in truth if any(d.start_s < t.end_s and d.end_s > t.start_s for d in found)]
    assert len(hits) == len(truth)
    assert all(any(d.start_s < t.end_s and d.end_s > t.start_s for t in truth) for d in found), "no false detections"
    assert all(abs(min(abs(d.start_s - t.start_s) for t in truth)) < 1.0 for d in found), "segments start within 1 s of the turn"
    # A voice enrolled after indexing is found from the index alone, without decoding audio again.
    engine.enroll("1688-late", [str(f) for f in largest(enrolled["1688"], 1)], note="late")
    recording.unlink()
    later = engine.search(None, ["1688-late"]).detections
    late_truth = [t for t in turns if t.speaker == "1688"]
    assert sum(any(d.start_s < t.end_s and d.end_s > t.start_s for d in later) for t in late_truth) >= len(late_truth) - 1
    assert all(d.source == str(recording) for d in later)


def test_index_skips_known_content_and_reports_bad_files(tmp_path: Path, engine: Engine, readers: dict[str, list[Path]]) -> None:
    good = write_wav(tmp_path / "good.wav", load_audio(largest(readers["367"], 1)[0]))
    (tmp_path / "broken.flac").write_bytes(b"fLaC" + b"\x00" * 100)
    entries, errors = engine.index([str(tmp_path)])
    assert [e.path for e in entries] == [str(good)] and entries[0].speech_s > 5
    assert len(errors) == 1 and "broken.flac" in errors[0]
    copy = tmp_path / "copy.wav"
    shutil.copy(good, copy)
    again, _ = engine.index([str(copy)])
    assert again[0].sha256 == entries[0].sha256 and again[0].path == str(copy)
    assert len(engine.store.recordings(engine.backend.name)) == 1, "same content indexed once"


def test_forget_removes_every_trace(tmp_path: Path, engine: Engine, enrolled: dict[str, list[Path]]) -> None:
    from voxwatch import FileSource

    stream = write_wav(tmp_path / "s.wav", np.concatenate([load_audio(f) for f in largest(enrolled["3005"], 2)]))
    summary = engine.watch([FileSource(str(stream))])
    assert any(a.speaker == "3005" for a in summary.alerts)
    counts = engine.forget("3005")
    assert counts["enrollments"] == 3 and counts["alerts"] >= 1
    with pytest.raises(UnknownSpeakerError):
        engine.verify(stream, "3005")
    if engine.store._dialect.name == "postgresql":  # every row of every table; PostgreSQL's files are the server's
        tables = engine.store._query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        for (table,) in tables:
            for row in engine.store._query(f"SELECT * FROM {table}"):
                assert "3005" not in " ".join(map(str, row)), f"{table} still mentions the voice: {row}"
        return
    engine.store.close()
    db = sqlite3.connect(engine.settings.db)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for row in db.execute(f"SELECT * FROM {table}").fetchall():
            assert "3005" not in " ".join(map(str, row)), f"{table} still mentions the voice: {row}"
    db.close()
    raw = Path(engine.settings.db).read_bytes()
    assert b'"3005"' not in raw and b"speaker\x0f3005" not in raw


def test_unknown_speaker_and_empty_watchlist(engine: Engine, readers: dict[str, list[Path]]) -> None:
    with pytest.raises(UsageError, match="no voices are enrolled"):
        engine.identify(readers["367"][0])
    with pytest.raises(UnknownSpeakerError, match="no enrolled voice named 'ghost'"):
        engine.forget("ghost")


def test_an_indexed_recording_keeps_its_channel_band_for_search(
    tmp_path: Path, engine: Engine, enrolled: dict[str, list[Path]]
) -> None:
    """A walkie-talkie recording is indexed as narrowband, and search scores its segments with the narrowband
    calibration and threshold (the wideband copy of the same speech with the wideband ones)."""
    speech = np.concatenate([load_audio(f) for f in largest(enrolled["2033"], 2)])
    wide = write_wav(tmp_path / "wide.wav", speech)
    narrow = write_wav(tmp_path / "narrow.wav", radio(speech, np.random.default_rng(4), snr_db=20.0))
    result = engine.search([str(wide), str(narrow)], ["2033"], threshold_llr=-np.inf)  # every segment, with its LLR
    bands = {Path(r.path).name: r.bandwidth_hz for r in result.recordings}
    assert bands["wide.wav"] > NARROWBAND_HZ > bands["narrow.wav"] > 0
    calibration = engine.calibration()
    for rec in result.recordings:
        scores = engine.watchlist(["2033"]).scores(rec.vectors.astype(np.float32), band_name(rec.bandwidth_hz))[:, 0]
        expected = calibration.for_band(rec.bandwidth_hz).llr(scores, rec.spans[:, 2])
        found = [d.llr for d in result.detections if d.source == rec.path]  # merged regions keep their best LLR
        assert found and abs(max(found) - float(np.max(expected))) < 2e-3
    assert calibration.for_band(bands["narrow.wav"]) is calibration.narrowband
    assert engine.threshold(bands["narrow.wav"]) > engine.threshold(bands["wide.wav"])  # same 0.1 false alarms/voice-hour


def test_an_index_made_before_channel_bands_still_searches(
    tmp_path: Path, engine: Engine, enrolled: dict[str, list[Path]]
) -> None:
    """A database at schema 2 (before recordings kept their channel band) opens, migrates, and its recordings count as
    of unknown band: scored as wideband."""
    from voxwatch.store import MIGRATIONS, Store
    from voxwatch.store.dialect import open_dialect

    old = tmp_path / "old.db"
    db = sqlite3.connect(old)
    for number, step in enumerate(MIGRATIONS[:2], start=1):
        db.executescript("BEGIN; " + "\n".join(open_dialect(old).migration(step)) + f" PRAGMA user_version = {number}; COMMIT;")
    spans = np.array([[0.0, 5.0, 4.5, 0.9]], np.float32)
    vector = engine.watchlist(["2033"]).matrix[:1].astype(np.float16)
    db.execute(
        "INSERT INTO recordings (sha256, model, path, duration_s, speech_s, indexed_at, spans, vectors) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("0" * 64, engine.backend.name, "old.wav", 5.0, 4.5, "2026-01-01T00:00:00Z", spans.tobytes(), vector.tobytes()),
    )
    db.commit()
    db.close()
    store = Store(old)
    [recording] = store.recordings(engine.backend.name)
    assert recording.path == "old.wav" and recording.bandwidth_hz == 0.0
    calibration = engine.calibration()
    assert calibration.for_band(recording.bandwidth_hz) is calibration
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    store.close()


def test_a_stream_that_changes_channel_band_changes_encoder_between_turns(engine: Engine, readers: dict[str, list[Path]]) -> None:
    """The default model hears a wideband stretch with GE2E and a radio stretch with voxwatch-enc: no turn mixes the
    two, and voiceprints hold both."""
    speech = np.concatenate([load_audio(f) for f in largest(readers["1688"], 2)])
    stream = np.concatenate([speech, radio(speech, np.random.default_rng(3), snr_db=20.0)])
    spotter = engine.spotter()
    events = []
    for start in range(0, len(stream), RATE_HZ):
        events += spotter.process([AudioChunk("line", start / RATE_HZ, stream[start : start + RATE_HZ])])
    events += spotter.finish("line")
    parts = [
        (s.bandwidth_hz, np.abs(s.vector()[:256]).sum() > 0, np.abs(s.vector()[256:]).sum() > 0)
        for s in events
        if isinstance(s, Segment)
    ]
    assert all(wide != narrow for _, wide, narrow in parts), parts  # each turn heard by one encoder
    assert all(wide == (band >= NARROWBAND_HZ) for band, wide, _ in parts), parts  # the one for its band
    assert parts[-1][2] and sum(wide for _, wide, _ in parts) >= 2, parts  # the radio end by voxwatch-enc
    engine.enroll("1688", [str(largest(readers["1688"], 3)[2])])
    _, prints = engine.store.voiceprint_matrix(engine.backend.name)
    assert np.all(np.abs(prints[:, :256]).sum(axis=1) > 0) and np.all(np.abs(prints[:, 256:]).sum(axis=1) > 0)


def test_a_voice_enrolled_under_another_model_is_named_and_can_be_enrolled_again(
    suite_db: str | Path,
    readers: dict[str, list[Path]],
    models,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    files = [str(f) for f in largest(readers["3005"], 2)]
    with Engine(Settings(db=suite_db, model="ge2e"), vad=models[1]) as old:
        old.enroll("3005", files, note="before the default changed")
    with Engine(Settings(db=suite_db), backend=models[0], vad=models[1]) as new:
        with caplog.at_level("WARNING"):
            assert new.watchlist().names == ()
        assert "1 enrolled voice(s) have no voiceprint of model ge2e+voxwatch-enc, only of ge2e" in caplog.text
        assert "3005" in caplog.text and "--model ge2e" in caplog.text
        with pytest.raises(EnrollmentError, match="already enrolled for '3005'"):
            new.enroll("someone else", files[:1])
        new.enroll("3005", files)  # the same recordings again: this model's voiceprints join their enrollments
        assert new.watchlist().names == ("3005",) and len(new.store.enrollments("3005")) == 2
        with pytest.raises(EnrollmentError, match="already enrolled for '3005'"):
            new.enroll("3005", files[:1])
        assert new.store.voiceprint_models() == {"3005": {"ge2e", "ge2e+voxwatch-enc"}}
