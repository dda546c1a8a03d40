"""The command line, as a user runs it: every command on real audio, and bad input failing in one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_OTHER, largest

from voxwatch import load_audio
from voxwatch.audio import RATE_HZ, write_wav
from voxwatch.channels import bandpass

COMMANDS = [
    "enroll",
    "speakers",
    "forget",
    "verify",
    "identify",
    "index",
    "search",
    "watch",
    "alerts",
    "transcribe",
    "eval",
    "calibrate",
    "compare",
    "demo",
    "serve",
]


def run(tmp_path: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOXWATCH_DB": str(tmp_path / "cli.db")}
    exe = Path(sys.executable).with_name("voxwatch")
    result = subprocess.run([str(exe), *args], input=stdin, capture_output=True, env=env, cwd=tmp_path, timeout=300, check=False)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def assert_clean_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode not in (0, 1) or result.returncode == 1 and "error" in result.stderr, result
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("voxwatch: error:"), result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(tmp_path: Path, command: str) -> None:
    result = run(tmp_path, command, "--help")
    assert result.returncode == 0 and "Example" in result.stdout


def test_end_to_end_session(tmp_path: Path, readers: dict[str, list[Path]], impostors: dict[str, list[Path]]) -> None:
    jane = largest(readers["2609"], 3)
    enroll = run(tmp_path, "--json", "enroll", "Jane Reader", *map(str, jane), "--note", "LibriSpeech test-other, CC BY 4.0")
    assert enroll.returncode == 0, enroll.stderr
    infos = [json.loads(line) for line in enroll.stdout.splitlines()]
    assert len(infos) == 3 and all(i["speech_s"] > 3 and i["note"].startswith("LibriSpeech") for i in infos)

    listed = [json.loads(line) for line in run(tmp_path, "--json", "speakers").stdout.splitlines()]
    assert listed[0]["name"] == "Jane Reader" and listed[0]["enrollments"] == 3

    others = [f for f in readers["2609"] if f not in jane]
    verify = json.loads(run(tmp_path, "--json", "verify", str(largest(others, 1)[0]), "--speaker", "Jane Reader").stdout)
    assert verify["accepted"] is True and verify["llr"] > 0
    stranger = largest(readers["3331"], 1)[0]
    assert json.loads(run(tmp_path, "--json", "verify", str(stranger), "--speaker", "Jane Reader").stdout)["accepted"] is False
    assert "none of the above" in run(tmp_path, "identify", str(stranger)).stdout
    assert run(tmp_path, "identify", str(largest(others, 1)[0])).stdout.startswith("1. Jane Reader")

    # A recording with Jane in the middle of two strangers.
    parts = [
        load_audio(next(iter(impostors.values()))[0]),
        np.zeros(RATE_HZ, np.float32),
        load_audio(largest(others, 1)[0]),
        np.zeros(RATE_HZ, np.float32),
        load_audio(list(impostors.values())[1][0]),
    ]
    jane_start = (len(parts[0]) + RATE_HZ) / RATE_HZ
    jane_end = jane_start + len(parts[2]) / RATE_HZ
    archive = tmp_path / "archive"
    write_wav(archive / "show.wav", np.concatenate(parts))
    indexed = run(tmp_path, "--json", "index", str(archive), "--workers", "2")
    assert indexed.returncode == 0 and json.loads(indexed.stdout)["segments"] >= 3
    progress = json.loads(indexed.stderr)  # stderr: one progress line per finished file
    assert (progress["type"], progress["done"], progress["total"], progress["error"]) == ("progress", 1, 1, None)
    assert abs(progress["duration_s"] - len(np.concatenate(parts)) / RATE_HZ) < 0.1
    found = [json.loads(line) for line in run(tmp_path, "--json", "search", "--speaker", "Jane Reader").stdout.splitlines()]
    assert len(found) == 1 and abs(found[0]["start_s"] - jane_start) < 1.0 and abs(found[0]["end_s"] - jane_end) < 1.5
    rttm = run(tmp_path, "search", str(archive), "--rttm").stdout.split()
    assert rttm[:8] == ["SPEAKER", "show", "1", rttm[3], rttm[4], "<NA>", "<NA>", "Jane_Reader"] and len(rttm) == 10

    watched = run(tmp_path, "--json", "watch", str(archive / "show.wav"), "--pace", "fast", "--alerts-file", "alerts.jsonl")
    assert watched.returncode == 0, watched.stderr
    alerts = [json.loads(line) for line in watched.stdout.splitlines() if json.loads(line)["type"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["speaker"] == "Jane Reader"
    assert jane_start <= alerts[0]["stream_time_s"] <= jane_start + 4
    # when Jane's turn has ended, what she said follows the alert, on the console and in the JSON-lines file
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    said = [e for e in events if e["type"] == "transcript"]
    assert len(said) == 1 and said[0]["alert_id"] == alerts[0]["alert_id"] and events.index(said[0]) > events.index(alerts[0])
    assert said[0]["status"] == "done" and said[0]["language"] == "en" and len(said[0]["text"].split()) >= 3, said
    lines = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(x.get("type", "alert"), x["alert_id"]) for x in lines] == [
        ("alert", alerts[0]["alert_id"]),
        ("transcript", alerts[0]["alert_id"]),
    ]
    listed = run(tmp_path, "alerts", "--format", "jsonl")
    assert json.loads(listed.stdout)["transcript"]["text"] == said[0]["text"]

    # 8 kHz raw PCM on stdin: a narrowband line, heard by voxwatch-enc and scored with its narrowband calibration (GE2E
    # did not reach this calibration's 0.1 false alarms per voice-hour on it); an operator may set the threshold outright
    pcm = (bandpass(np.concatenate(parts), 0, 3800)[::2] * 32767).astype("<i2").tobytes()
    piped = run(tmp_path, "--json", "watch", "-", "--rate", "8000", stdin=pcm)
    assert piped.returncode == 0, piped.stderr
    heard = [json.loads(x) for x in piped.stdout.splitlines() if json.loads(x)["type"] == "alert"]
    assert [a["speaker"] for a in heard] == ["Jane Reader"] and heard[0]["llr"] >= 6.0, heard
    strict = run(tmp_path, "--json", "watch", "-", "--rate", "8000", "--threshold", "20", stdin=pcm)
    assert strict.returncode == 0 and not [x for x in strict.stdout.splitlines() if json.loads(x)["type"] == "alert"]

    forgot = run(tmp_path, "forget", "Jane Reader")
    assert forgot.returncode == 0 and "forgot 'Jane Reader'" in forgot.stdout
    assert "no voices enrolled" in run(tmp_path, "speakers").stdout


def test_eval_on_a_trial_list(tmp_path: Path, readers: dict[str, list[Path]]) -> None:
    """A Kaldi-order list ('enroll test target|nontarget') of paths under --root, with a score file."""
    lines = []
    names = ["1688", "2033", "3005", "367"]
    root = TEST_OTHER
    for a in names:
        for b in names:
            enroll, test = largest(readers[a], 1)[0].relative_to(root), largest(readers[b], 3)[-1].relative_to(root)
            lines.append(f"{enroll} {test} {'target' if a == b else 'nontarget'}")
    (tmp_path / "trials.txt").write_text("\n".join(lines) + "\n")
    result = run(tmp_path, "--json", "eval", "trials.txt", "--root", str(root), "--det", "det.png", "--scores", "scores.txt")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n_target"] == 4 and metrics["n_nontarget"] == 12
    assert metrics["eer"] <= 0.1 and metrics["cllr"] < 1.0
    assert (tmp_path / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scored = [line.split() for line in (tmp_path / "scores.txt").read_text().splitlines()]
    assert [s[:2] + s[4:] for s in scored] == [line.split() for line in lines]
    target = np.array([float(s[3]) for s in scored if s[4] == "target"])
    assert target.min() > max(float(s[3]) for s in scored if s[4] == "nontarget") - 5  # LLRs, targets on top
    assert np.mean(target) > 0


def test_a_model_without_a_calibration_decides_nothing_until_given_one(tmp_path: Path, readers: dict[str, list[Path]]) -> None:
    from voxwatch.ge2e import export
    from voxwatch.scoring import Calibration

    model = str(export(tmp_path / "mine.onnx", name="mine"))  # GE2E's weights under a name with no shipped calibration
    jane, other = largest(readers["2609"], 2), largest(readers["2609"], 3)[-1]
    assert run(tmp_path, "enroll", "Jane", *map(str, jane), "--model", model).returncode == 0  # enrolling decides nothing
    for args in (["verify", str(other), "--speaker", "Jane"], ["identify", str(other)], ["search", str(other)]):
        assert_clean_failure(run(tmp_path, *args, "--model", model), "'mine' has no calibration", "voxwatch calibrate")
    searched = run(tmp_path, "search", str(other), "--model", model, "--threshold", "2", "--json")
    assert searched.returncode == 0 and json.loads(searched.stdout.splitlines()[-1])["speaker"] == "Jane"
    ge2e = tmp_path / "ge2e-cal.json"
    ge2e.write_text(json.dumps(Calibration.default("ge2e").to_json()))
    refused = run(tmp_path, "verify", str(other), "--speaker", "Jane", "--model", model, "--calibration", str(ge2e))
    assert_clean_failure(refused, "a calibration of model 'ge2e', not 'mine'")
    own = tmp_path / "mine-cal.json"
    own.write_text(json.dumps({**Calibration.default("ge2e").to_json(), "model": "mine"}))
    verified = run(tmp_path, "verify", str(other), "--speaker", "Jane", "--model", model, "--calibration", str(own), "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["accepted"] is True


def test_bad_input_fails_in_one_clear_line(tmp_path: Path, readers: dict[str, list[Path]]) -> None:
    (tmp_path / "notes.wav").write_text("meeting notes, not audio\n" * 20)
    (tmp_path / "empty.wav").write_bytes(b"")
    write_wav(tmp_path / "silence.wav", np.zeros(RATE_HZ * 6, np.float32))
    assert_clean_failure(run(tmp_path, "enroll", "x", "missing.wav"), "missing.wav", "no such file")
    assert_clean_failure(run(tmp_path, "enroll", "x", "notes.wav"), "notes.wav", "cannot open as audio")
    assert_clean_failure(run(tmp_path, "enroll", "x", "empty.wav"), "empty.wav")
    assert_clean_failure(run(tmp_path, "enroll", "x", "silence.wav"), "silence.wav", "net speech")
    assert_clean_failure(run(tmp_path, "verify", "silence.wav", "--speaker", "nobody"), "nobody")
    assert_clean_failure(run(tmp_path, "watch", "silence.wav", "--pace", "fast"), "no voices are enrolled")
    assert run(tmp_path, "enroll", "ok", *map(str, largest(readers["367"], 2))).returncode == 0
    watch = run(tmp_path, "watch", "notes.wav", "--pace", "fast")
    assert watch.returncode == 3 and "notes.wav" in watch.stdout + watch.stderr and "Traceback" not in watch.stderr
    assert_clean_failure(run(tmp_path, "watch", "-", "--rate", "16000", stdin=b""), "no audio")
    assert_clean_failure(run(tmp_path, "eval", "notes.wav"), "notes.wav")
    assert [s for s in run(tmp_path, "--json", "speakers").stdout.splitlines()], "nothing stored was lost"


@pytest.mark.slow
def test_demo_runs_on_a_fresh_database(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (the demo's voices)")
    result = run(tmp_path, "demo", "--out", "demo", "--seconds", "60")
    assert result.returncode == 0, result.stderr
    assert "ALERT" in result.stdout and "summary: detected" in result.stdout
    assert "  said (en" in result.stdout  # each alert is followed by what the synthetic voice said


def test_calibrate_refits_on_own_trials_and_is_used(tmp_path: Path, readers: dict[str, list[Path]]) -> None:
    names = sorted(readers)[:6]
    lines = [f"{int(a == b)} {largest(readers[a], 1)[0]} {f}" for a in names for b in names for f in largest(readers[b], 4)[2:]]
    (tmp_path / "trials.txt").write_text("\n".join(lines) + "\n")
    assert_clean_failure(  # the default scores each band with its own encoder: one of them is calibrated
        run(tmp_path, "calibrate", "trials.txt", "--out", "ours.json"), "--model ge2e for wideband", "--model voxwatch-enc"
    )
    result = run(tmp_path, "--json", "--model", "ge2e", "calibrate", "trials.txt", "--out", "ours.json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cllr_after"] < 0.2 and report["cllr_after"] - report["min_cllr"] < 0.05, report  # calibrated on these trials
    table = json.loads((tmp_path / "ours.json").read_text())
    assert {"a", "b", "c", "d", "false_alarms"} <= set(table)
    evaluated = run(tmp_path, "--json", "--model", "ge2e", "--calibration", "ours.json", "eval", "trials.txt", "--det", "det.png")
    assert abs(json.loads(evaluated.stdout)["cllr"] - report["cllr_after"]) < 1e-6
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    assert_clean_failure(
        run(tmp_path, "--calibration", "broken.json", "eval", "trials.txt"), "broken.json", "not a voxwatch calibration"
    )


def test_recordings_on_stdin(tmp_path: Path, readers: dict[str, list[Path]]) -> None:
    jane = largest(readers["2609"], 3)
    enroll = run(tmp_path, "enroll", "Jane Reader", str(jane[0]), "-", "--json", stdin=jane[1].read_bytes())
    assert enroll.returncode == 0, enroll.stderr
    assert [json.loads(x)["file"] for x in enroll.stdout.splitlines()] == [str(jane[0]), "stdin"]
    verify = run(tmp_path, "verify", "-", "--speaker", "Jane Reader", "--json", stdin=jane[2].read_bytes())
    assert json.loads(verify.stdout)["accepted"] is True and json.loads(verify.stdout)["file"] == "-"
    stranger = largest(readers["3331"], 1)[0].read_bytes()
    assert "none of the above" in run(tmp_path, "identify", "-", stdin=stranger).stdout
    assert_clean_failure(run(tmp_path, "enroll", "Jane Reader", "-", stdin=jane[1].read_bytes()), "stdin", "already enrolled")
