"""The command line's shape: global options anywhere, every --help example parses (and, slow, runs), the audit log."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from test_cli import assert_clean_failure, run

from voxwatch import load_audio
from voxwatch.audio import RATE_HZ, write_wav
from voxwatch.cli import main
from voxwatch.store import Store


def commands(group: click.Group = main, prefix: str = "voxwatch") -> Iterator[tuple[str, click.Command]]:
    yield prefix, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def examples() -> list[str]:
    """Every ``voxwatch ...`` command line in the help texts (pipes, '&&' and comments split off)."""
    found = []
    for _, command in commands():
        for line in (command.help or "").splitlines():
            for part in re.split(r"\|(?!\|)|&&", line.split("  #")[0]):
                if part.strip().startswith("voxwatch "):
                    found.append(part.strip().split(" > ")[0])
    return found


EXAMPLES = examples()


def test_examples_are_found() -> None:
    assert len(EXAMPLES) >= 20 and "voxwatch speakers --json" in EXAMPLES and "voxwatch token list --json" in EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_help_example_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: str) -> None:
    """Each example is parsed by the real command line (files it names exist); only the command's body is skipped."""
    called = []
    for _, command in commands():
        if not isinstance(command, click.Group):
            monkeypatch.setattr(command, "callback", lambda *a, **k: called.append(k))
    argv = shlex.split(example)[1:]
    cwd = tmp_path / "here"
    cwd.mkdir()
    for before, token in zip(["", *argv], argv):
        folder = before in ("--allow-dir", "--data", "--root")
        if not token.startswith(("-", "/", "http")) and (folder or "." in Path(token).name):
            target = cwd / token
            target.parent.mkdir(parents=True, exist_ok=True)
            target.mkdir() if folder else target.touch()
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(called) == 1


def test_model_free_examples_run(tmp_path: Path) -> None:
    """The examples that need no recordings, run as a user would run them."""
    for example in [
        "voxwatch token create desk-1 --role operator --expires-days 90",
        "voxwatch token list --json",
        "voxwatch speakers --json",
    ]:
        assert example in EXAMPLES
        result = run(tmp_path, *shlex.split(example)[1:])
        assert result.returncode == 0, result.stderr
    assert json.loads(run(tmp_path, "token", "list", "--json").stdout)["name"] == "desk-1"


def test_global_options_before_or_after_the_command(tmp_path: Path) -> None:
    db = str(tmp_path / "other.db")
    created = run(tmp_path, "token", "create", "op", "--db", db, "--role", "viewer", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["token"].startswith("vxw_")
    before = run(tmp_path, "--db", db, "--json", "token", "list")
    after = run(tmp_path, "token", "list", "--json", "--db", db)
    assert before.stdout == after.stdout and json.loads(after.stdout)["name"] == "op"
    assert run(tmp_path, "token", "list", "--json").stdout == ""  # the default database ($VOXWATCH_DB) has no token
    # given both before and after the command, the one after wins
    assert json.loads(run(tmp_path, "--db", str(tmp_path / "x.db"), "token", "list", "--db", db, "--json").stdout)


def test_audit_log_with_filters(tmp_path: Path) -> None:
    store = Store(tmp_path / "cli.db")
    store.audit("ana", "search", "Jane Doe,Bob", "3 recordings")
    store.audit("ben", "verify", "Bob", "call.wav")
    store.audit("ana", "enroll", "Jane Doe", "jane.wav")
    store.close()
    everything = [json.loads(x) for x in run(tmp_path, "audit", "--json").stdout.splitlines()]
    assert [e["action"] for e in everything] == ["search", "verify", "enroll"]
    jane = [json.loads(x) for x in run(tmp_path, "audit", "--speaker", "Jane Doe", "--json").stdout.splitlines()]
    assert [e["action"] for e in jane] == ["search", "enroll"]  # also where she is one of several voices
    assert [json.loads(x)["actor"] for x in run(tmp_path, "--json", "audit", "--action", "verify").stdout.splitlines()] == ["ben"]
    assert len(run(tmp_path, "audit", "--last", "2").stdout.splitlines()) == 2
    assert run(tmp_path, "audit", "--since", "2999-01-01").stdout == ""
    reads = [json.loads(x) for x in run(tmp_path, "audit", "--action", "audit-read", "--json").stdout.splitlines()]
    assert len(reads) == 5 and reads[1]["target"] == "Jane Doe"  # reading the log is logged
    assert_clean_failure(run(tmp_path, "audit", "--since", "last week"), "--since", "ISO date")


def test_a_folder_where_a_file_is_expected_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "calls").mkdir()
    for args in (["enroll", "x", "calls"], ["verify", "calls", "--speaker", "x"], ["identify", "calls"]):
        assert_clean_failure(run(tmp_path, *args), "calls: is a folder")
    assert_clean_failure(run(tmp_path, "compare", "calls", "--reference", "calls"), "calls: is a folder")
    assert_clean_failure(run(tmp_path, "enroll", "x", "-", "-"), "only once")


# Examples not run by test_help_examples_run_on_real_speech, and why.
NOT_RUN = {
    "voxwatch watch radio.mp3 http://icecast.example/stream --pace realtime": "a network stream",
    'voxwatch watch http://radio.example/live.mp3 --speaker "Jane Doe" --reconnect 10 --alerts-file alerts.jsonl': "network",
    "voxwatch search /archive --speaker alice --rttm": "a user's archive folder",
    "voxwatch index /archive/2026 --workers 4": "a user's archive folder",
    'voxwatch search /archive/2026 --speaker "Jane Doe"': "a user's archive folder",
    "voxwatch demo": "test_packaging runs it, from a fresh install",
    "voxwatch demo --data ../shared/data/resemblyzer/audio_data/librispeech_test-other": "the demo again",
    "voxwatch serve --allow-dir recordings/ --port 8686 --retain-days 30": "runs until stopped (test_service covers it)",
    "voxwatch --log-format json serve --metrics-public": "runs until stopped (test_operations covers it)",
    "voxwatch serve --allow-dir recordings/ --ray auto": "runs until stopped, on a Ray cluster (test_cluster covers it)",
    "voxwatch index /shared/archive --ray auto --chunk-minutes 20": "a user's archive folder, on a Ray cluster (test_cluster covers it)",
    "voxwatch transcribe /archive/call-0142.wav --format json --language nl": "a user's archive folder",
    "voxwatch search /archive/calls --language ar": "a user's archive folder",
}
RUN_ORDER = [  # the others, in an order a user would take
    "voxwatch token create alice --role admin",
    "voxwatch token create desk-1 --role operator --expires-days 90",
    "voxwatch token create desk-2 --role viewer --expires-days 30",
    "voxwatch token list",
    "voxwatch token list --json",
    'voxwatch enroll alice alice-ref1.wav alice-ref2.flac --note "consented 2026-11-01, interview"',
    'voxwatch enroll "Jane Doe" jane1.wav jane2.mp3 --note "press conference 2026-03-02, public broadcast"',
    'voxwatch enroll "Jane Doe" - --note "interview 2026-03-04"',
    "voxwatch speakers --json",
    'voxwatch verify questioned.wav --speaker "Jane Doe"',
    "voxwatch identify caller.wav --top 3",
    "voxwatch watch channel1.mp3 channel2.flac --pace realtime",
    "voxwatch watch - --rate 8000",
    "voxwatch watch channel1.mp3 --language ar",
    "voxwatch eval trials.txt --p-target 0.01 --det det.png",
    "voxwatch eval voxceleb1-o.txt --root wav/ --scores scores.txt",
    "voxwatch --model voxwatch-enc calibrate our-trials.txt --out ours.json",
    'voxwatch --model voxwatch-enc enroll "Jane Doe" jane1.wav',  # a voiceprint of that model, from the same recording
    "voxwatch --model voxwatch-enc --calibration ours.json watch line1.wav",
    "voxwatch compare intercept.wav --reference suspect-interview1.wav --reference suspect-interview2.flac --report case-17.html",
    'voxwatch search --speaker "Jane Doe" --rttm',
    "voxwatch transcribe interview.mp3",
    "voxwatch transcribe hearing.flac --format srt",
    'voxwatch alerts --speaker "Jane Doe" --since 2026-11-29T08:00:00Z',
    'voxwatch alerts --text "bridge" --language en',
    "voxwatch alerts --format csv",
    'voxwatch audit --speaker "Jane Doe"',
    "voxwatch audit --action search --since 2026-11-01 --json",
    'voxwatch forget "Jane Doe"',
]


@pytest.mark.slow
def test_help_examples_run_on_real_speech(tmp_path: Path, readers: dict[str, list[Path]]) -> None:
    """Every example that needs no network, archive or server runs as written, on real speech named as it names it."""
    assert set(EXAMPLES) == set(RUN_ORDER) | set(NOT_RUN), "a new example: run it here or say why not"
    speech = {name: sorted(files, key=lambda f: -f.stat().st_size) for name, files in readers.items()}
    staged = {
        "alice-ref1.wav": speech["1688"][0],
        "alice-ref2.flac": speech["1688"][1],
        "jane1.wav": speech["2609"][0],
        "jane2.mp3": speech["2609"][1],
        "questioned.wav": speech["2609"][3],
        "caller.wav": speech["3331"][0],
        "intercept.wav": speech["2609"][4],
        "suspect-interview1.wav": speech["2609"][5],
        "suspect-interview2.flac": speech["2609"][6],
        "wav/a.wav": speech["367"][0],
        "wav/b.wav": speech["367"][1],
        "wav/c.wav": speech["3005"][0],
        "interview.mp3": speech["2609"][8],
        "hearing.flac": speech["1688"][2],
    }
    for name, source in staged.items():  # the content is WAV whatever the name says: decoding probes it
        write_wav(tmp_path / name, load_audio(source))
    for name in ("channel1.mp3", "channel2.flac", "line1.wav"):
        write_wav(tmp_path / name, load_audio(speech["2609"][2])[: 4 * RATE_HZ])
    trials = "1 alice-ref1.wav alice-ref2.flac\n0 alice-ref1.wav jane1.wav\n1 jane1.wav jane2.mp3\n0 jane1.wav alice-ref2.flac\n"
    (tmp_path / "trials.txt").write_text(trials)
    (tmp_path / "our-trials.txt").write_text(trials + "1 jane1.wav questioned.wav\n0 alice-ref1.wav questioned.wav\n")
    (tmp_path / "voxceleb1-o.txt").write_text("a.wav b.wav target\na.wav c.wav nontarget\n")
    stdin = {
        'voxwatch enroll "Jane Doe" - --note "interview 2026-03-04"': speech["2609"][7].read_bytes(),
        "voxwatch watch - --rate 8000": (load_audio(speech["2609"][2])[: 4 * RATE_HZ : 2] * 32767).astype("<i2").tobytes(),
    }
    for example in RUN_ORDER:
        result = run(tmp_path, *shlex.split(example)[1:], stdin=stdin.get(example))
        assert result.returncode == 0, f"{example}: {result.stderr}"
    assert (tmp_path / "det.png").is_file() and (tmp_path / "case-17.html").is_file()
    assert len((tmp_path / "scores.txt").read_text().splitlines()) == 2 and (tmp_path / "ours.json").is_file()
