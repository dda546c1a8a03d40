"""Settings resolution: defaults, then the TOML file, then VOXWATCH_* variables, then the command line; a bad file
fails in one line naming the file, the key and the fix. No models, no audio: seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from voxwatch import cli_context
from voxwatch.cli import main
from voxwatch.embedding import DEFAULT_MODEL
from voxwatch.engine import SearchResult
from voxwatch.errors import UsageError
from voxwatch.pipeline import DEFAULT_FALSE_ALARMS_PER_HOUR
from voxwatch.settings import Settings, default_db, resolve_settings


def write(folder: Path, text: str, name: str = "voxwatch.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


FILE = 'db = "file.db"\nmodel = "file-model"\nfalse_alarms_per_hour = 0.5\nthreads = 3\n'
ENV = {"VOXWATCH_DB": "env.db", "VOXWATCH_MODEL": "env-model", "VOXWATCH_FALSE_ALARMS_PER_HOUR": "0.05"}


def test_each_layer_overrides_the_one_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))  # platformdirs' user config dir on Linux
    config = write(tmp_path, FILE)
    defaults = resolve_settings(environ={})
    assert defaults.model == DEFAULT_MODEL and defaults.spotter.false_alarms_per_hour == DEFAULT_FALSE_ALARMS_PER_HOUR

    from_file = resolve_settings(config, environ={})
    assert from_file.db == tmp_path / "file.db"  # relative to the file's folder
    assert (from_file.model, from_file.threads, from_file.spotter.false_alarms_per_hour) == ("file-model", 3, 0.5)

    from_env = resolve_settings(config, environ=ENV)
    assert (from_env.db, from_env.model, from_env.spotter.false_alarms_per_hour) == (Path("env.db"), "env-model", 0.05)
    assert from_env.threads == 3, "a key the environment does not set keeps the file's value"

    given = {"db": Path("cli.db"), "model": "cli-model", "false_alarms_per_hour": 2.0, "threshold": None}
    from_cli = resolve_settings(config, given, environ=ENV)
    assert (from_cli.db, from_cli.model, from_cli.spotter.false_alarms_per_hour) == (Path("cli.db"), "cli-model", 2.0)


def test_config_file_from_the_environment_and_a_missing_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path, 'model = "named-by-env"\n', "elsewhere.toml")
    assert resolve_settings(environ={"VOXWATCH_CONFIG": str(config)}).model == "named-by-env"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # platformdirs' user config dir on Linux
    assert resolve_settings(environ={}) == Settings(), "a missing default file is fine"
    (tmp_path / "config" / "voxwatch").mkdir(parents=True)
    write(tmp_path / "config" / "voxwatch", "threads = 2\n")
    assert resolve_settings(environ={}).threads == 2
    assert default_db() == Settings().db


def test_the_operating_point_comes_whole_from_the_last_layer_that_sets_it(tmp_path: Path) -> None:
    config = write(tmp_path, "false_alarms_per_hour = 0.5\n")
    by_env = resolve_settings(config, environ={"VOXWATCH_THRESHOLD": "3"}).spotter
    assert (by_env.threshold_llr, by_env.false_alarms_per_hour) == (3.0, DEFAULT_FALSE_ALARMS_PER_HOUR)
    by_cli = resolve_settings(config, {"false_alarms_per_hour": 1.0}, environ={"VOXWATCH_THRESHOLD": "3"}).spotter
    assert (by_cli.threshold_llr, by_cli.false_alarms_per_hour) == (None, 1.0)
    with pytest.raises(UsageError, match="not both"):
        resolve_settings(write(tmp_path, "threshold = 3\nfalse_alarms_per_hour = 1\n"), environ={})


class SpyEngine:
    """Stands in for the engine: records the settings a command resolved and finds nothing."""

    seen: ClassVar[list[Settings]] = []

    def __init__(self, settings: Settings):
        self.seen.append(settings)

    def search(self, *args: object, **kwargs: object) -> SearchResult:
        return SearchResult([], [], [])


def test_the_command_line_overrides_only_what_it_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_context, "Engine", SpyEngine)
    SpyEngine.seen.clear()
    config = write(tmp_path, FILE)
    runner = CliRunner()
    env = {"XDG_CONFIG_HOME": str(tmp_path / "none"), **dict.fromkeys([*ENV, "VOXWATCH_CONFIG"])}
    for args, extra in [
        (["--config", str(config), "search"], {}),
        (["search"], {"VOXWATCH_CONFIG": str(config)}),
        (["--config", str(config), "search"], ENV),
        (["--config", str(config), "--db", "cli.db", "--model", "cli-model", "search", "--false-alarms-per-hour", "2"], ENV),
    ]:
        result = runner.invoke(main, args, env={**env, **extra})
        assert result.exit_code == 0, result.output
    file, file_by_env, env_over_file, cli_over_env = ((s.db, s.model, s.spotter.false_alarms_per_hour) for s in SpyEngine.seen)
    assert file == file_by_env == (tmp_path / "file.db", "file-model", 0.5)  # --model's shown default does not override
    assert env_over_file == (Path("env.db"), "env-model", 0.05)
    assert cli_over_env == (Path("cli.db"), "cli-model", 2.0)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('modle = "ge2e"\n', ["unknown key 'modle'", "the keys are db, model"]),
        ('threads = "two"\n', ["threads = 'two' is not a whole number", "write e.g. threads = 2"]),
        ("false_alarms_per_hour = -1\n", ["false_alarms_per_hour = -1 is not a positive number"]),
        ("model = \n", ["not valid TOML", "line 1"]),
        ('calibration = "ours.json"\n', ["calibration = 'ours.json': no such file", "remove the key"]),
    ],
)
def test_a_bad_file_fails_in_one_line_with_exit_code_2(tmp_path: Path, text: str, needles: list[str]) -> None:
    config = write(tmp_path, text)
    result = CliRunner().invoke(main, ["--config", str(config), "speakers"], env={"VOXWATCH_DB": str(tmp_path / "x.db")})
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"voxwatch: error: {config}: "), result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert not (tmp_path / "x.db").exists(), "nothing runs on bad settings"


def test_a_missing_explicit_file_and_a_bad_variable_fail_as_a_user_runs_them(tmp_path: Path) -> None:
    cli = [sys.executable, "-c", "from voxwatch.cli import main; main()"]
    env = {**os.environ, "VOXWATCH_DB": str(tmp_path / "x.db"), "VOXWATCH_CONFIG": str(tmp_path / "gone.toml")}
    missing = subprocess.run([*cli, "speakers"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr == f"voxwatch: error: {tmp_path / 'gone.toml'}: no such settings file (named by $VOXWATCH_CONFIG);" + (
        " fix the path or create the file\n"
    )
    env = {**env, "VOXWATCH_CONFIG": str(write(tmp_path, "")), "VOXWATCH_THREADS": "0"}
    bad = subprocess.run([*cli, "speakers"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("voxwatch: error: $VOXWATCH_THREADS='0' is not a whole number")


def test_a_postgresql_url_is_kept_whole_in_every_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://voxwatch@db.example:5432/cases"
    config = write(tmp_path, f'db = "{url}"\n')
    assert resolve_settings(config, environ={}).db == url  # not a file beside the settings file
    assert resolve_settings(environ={"VOXWATCH_DB": "postgres://db.example/x"}).db == "postgres://db.example/x"
    assert resolve_settings(config, {"db": "here.db"}, environ={}).db == Path("here.db")
    seen: list[object] = []
    monkeypatch.setattr(cli_context.Context, "engine", lambda self, *a, **k: seen.append(self.settings().db) or sys.exit(0))
    CliRunner().invoke(main, ["speakers", "--db", url])
    assert seen == [url]
