"""The command line's shape, without models: global options anywhere, every --help example parses, the audit log."""

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
    for example in ["voxwatch token create operator-1", "voxwatch token list --json", "voxwatch speakers --json"]:
        assert example in EXAMPLES
        result = run(tmp_path, *shlex.split(example)[1:])
        assert result.returncode == 0, result.stderr
    assert json.loads(run(tmp_path, "token", "list", "--json").stdout)["name"] == "operator-1"


def test_global_options_before_or_after_the_command(tmp_path: Path) -> None:
    db = str(tmp_path / "other.db")
    created = run(tmp_path, "token", "create", "op", "--db", db, "--json")
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
