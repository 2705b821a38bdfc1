"""Command-line conventions: -V/--version, -v/-q, config files, read-only status, NO_COLOR, completion."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

import mmsearch
from mmsearch import Engine
from mmsearch.cli import cli
from mmsearch.cli.logs import log_level
from mmsearch.web.server import WebServer
from tests.web_library import running

PACKAGE = Path(mmsearch.__file__).resolve().parent


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


# -- version ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_is_the_installed_metadata(flag: str) -> None:
    result = invoke(flag)
    assert result.exit_code == 0
    assert result.output == f"mmsearch, version {metadata.version('mmsearch')}\n"
    assert mmsearch.__version__ == metadata.version("mmsearch")


def test_no_second_version_literal_in_the_package() -> None:
    literals = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if re.search(r"^(__version__|VERSION)\s*=", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert literals == []


# -- verbosity ------------------------------------------------------------------------------------------------


def test_verbosity_levels() -> None:
    assert log_level(0, False) == logging.WARNING
    assert log_level(1, False) == logging.INFO
    assert log_level(2, False) == logging.DEBUG
    assert log_level(0, True) == logging.ERROR
    result = CliRunner().invoke(cli, ["-q", "-v", "status"])
    assert result.exit_code == 2 and "-q and -v do not go together" in result.output


def test_an_in_process_cli_call_leaves_the_logging_set_up_as_it_found_it(tmp_path: Path) -> None:
    """The CLI sends records to stderr while a command runs; a program that runs it in-process (CliRunner here)
    gets its own loggers back afterwards: the same handlers, levels and propagation, whatever -v/-q said."""
    root, ours = logging.getLogger(), logging.getLogger("mmsearch")
    mine = logging.StreamHandler()
    root.addHandler(mine)
    try:
        before = [(list(each.handlers), each.level, each.propagate) for each in (root, ours)]
        for flags in ([], ["-v"], ["-vv"], ["-q"]):
            result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), *flags, "status"])
            assert result.exit_code == 1 and "nothing is indexed" in result.output, result.output
            assert [(list(each.handlers), each.level, each.propagate) for each in (root, ours)] == before
    finally:
        root.removeHandler(mine)


def test_library_modules_log_and_never_print() -> None:
    printing = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if "cli" not in path.relative_to(PACKAGE).parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"(?<![\w.])print\(|click\.echo\(|sys\.std(out|err)\.write\(", line)
    ]
    assert printing == []


@pytest.fixture
def served(tmp_path: Path, photo_dir: Path) -> Iterator[Path]:
    """A running query service (fake encoder, in a thread) for a home; yields the home."""
    home = tmp_path / "home"
    with Engine.open(home, model="fake:16", workers=1, batch_size=4) as engine:
        engine.ingest(photo_dir)
        engine.warm_up()
        with running(WebServer(engine)):
            yield home


def test_the_request_log_shows_with_verbose_only(served: Path) -> None:
    quiet = invoke("--home", str(served), "query", "a red square", "--json")
    assert quiet.exit_code == 0 and "/api/v1/search" not in quiet.output
    verbose = invoke("-v", "--home", str(served), "query", "a red square", "--json")
    assert verbose.exit_code == 0
    assert re.search(r"^mmsearch: GET /api/v1/search 200", verbose.output, re.MULTILINE), verbose.output


# -- config files ---------------------------------------------------------------------------------------------


def test_user_config_file_lives_in_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmsearch.config import user_config_file

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_config_file() == tmp_path / "xdg" / "mmsearch" / "config.toml"


def test_home_config_over_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmsearch.config import resolve_settings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg" / "mmsearch").mkdir(parents=True)
    (tmp_path / "xdg" / "mmsearch" / "config.toml").write_text('device = "cpu"\nk = 3\nmode = "dense"\n')
    home = tmp_path / "home"
    home.mkdir()
    assert (resolve_settings(home, environ={}).device, resolve_settings(home, environ={}).k) == ("cpu", 3)
    (home / "config.toml").write_text("k = 5\n")
    settings = resolve_settings(home, environ={})
    assert (settings.device, settings.k, settings.mode) == ("cpu", 5, "dense")
    assert resolve_settings(home, environ={"MMSEARCH_DEVICE": "cuda"}).device == "cuda"


def test_an_unknown_key_names_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmsearch.config import resolve_settings
    from mmsearch.errors import ConfigError

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user_file = tmp_path / "xdg" / "mmsearch" / "config.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match=rf"unknown setting\(s\) in {re.escape(str(user_file))}: colour"):
        resolve_settings(tmp_path, environ={})
    user_file.write_text('kind = "document"\n')
    with pytest.raises(ConfigError, match="kind must be one of"):
        resolve_settings(tmp_path, environ={})


def test_search_defaults_from_the_config_file(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    assert invoke("--home", str(home), "--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    (home / "config.toml").write_text('k = 2\nmode = "dense"\nkind = "any"\n')
    answer = json.loads(invoke("--home", str(home), "query", "a red square", "--json", "--no-service").output)
    assert (len(answer["hits"]), answer["mode"], answer["kind"]) == (2, "dense", "any")
    flags = invoke(
        "--home", str(home), "query", "a red square", "--json", "--no-service", "-k", "4", "--mode", "hybrid"
    )
    answer = json.loads(flags.output)
    assert (len(answer["hits"]), answer["mode"]) == (4, "hybrid")


# -- read-only commands ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["query", "a dog", "--no-service"], ["reindex"]])
def test_reading_commands_create_no_database(tmp_path: Path, command: list[str]) -> None:
    home = tmp_path / "missing" / "home"
    result = CliRunner().invoke(cli, ["--home", str(home), *command])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: nothing is indexed in {home} yet; run `mmsearch ingest FOLDER` first"
    ]
    assert not (tmp_path / "missing").exists()


def test_status_of_an_indexed_home_still_works(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    assert invoke("--home", str(home), "--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    result = invoke("--home", str(home), "status", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["model"]


# -- colour ---------------------------------------------------------------------------------------------------

COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7]|38;)")


def test_no_color_is_honoured(tmp_path: Path, photo_dir: Path) -> None:
    # mmsearch colours only through rich (the ingest progress bar; tables use no colour), and rich honours
    # NO_COLOR even where colour is forced.
    def ingest(home: str, no_color: str | None):
        args = ("--home", str(tmp_path / home), "--model", "fake:16", "ingest", str(photo_dir), "--progress")
        return invoke(*args, env={"FORCE_COLOR": "1", "NO_COLOR": no_color})

    coloured = ingest("a", None)
    assert COLOUR.search(coloured.output), "FORCE_COLOR should colour the bar (else this test proves nothing)"
    plain = ingest("b", "1")
    assert plain.exit_code == 0 and "6 added" in plain.output
    assert not COLOUR.search(plain.output)


# -- completion -----------------------------------------------------------------------------------------------


def test_bash_completion_script() -> None:
    result = CliRunner().invoke(cli, [], prog_name="mmsearch", env={"_MMSEARCH_COMPLETE": "bash_source"})
    assert result.exit_code == 0
    assert "_mmsearch_completion" in result.output and "complete " in result.output


def test_the_library_opens_without_creating(tmp_path: Path) -> None:
    from mmsearch.errors import NoIndexError

    with pytest.raises(NoIndexError, match="nothing is indexed"):
        Engine.open(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()
    with Engine.open(tmp_path / "made", model="fake:16"):
        pass
    with Engine.open(tmp_path / "made", create=False) as engine:  # an existing database opens as before
        assert engine.status().to_dict()["vectors"] == 0


def test_an_unexpected_error_is_one_line_and_exit_70(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A bug (an exception that is no library error) reaches the user as one line and exit code 70, not a
    traceback; MMSEARCH_DEBUG=1 lets the traceback through."""
    import mmsearch.cli as cli_module

    def broken(**kwargs: object) -> None:
        raise KeyError("no such thing\nsecond line")

    import gc

    monkeypatch.setattr(cli_module, "cli", broken)
    monkeypatch.setattr(cli_module.atexit, "register", lambda function: function)  # main()'s exit hook: not here
    monkeypatch.delenv("MMSEARCH_DEBUG", raising=False)
    try:
        with pytest.raises(SystemExit) as exited:
            cli_module.main()
        err = capsys.readouterr().err
        assert exited.value.code == cli_module.INTERNAL_ERROR == 70
        assert err.startswith("Error: internal error (KeyError:") and "MMSEARCH_DEBUG=1" in err
        assert err.count("\n") == 1 and "Traceback" not in err
        monkeypatch.setenv("MMSEARCH_DEBUG", "1")
        with pytest.raises(KeyError):
            cli_module.main()
    finally:
        gc.enable()  # main() turns the collector off for a one-shot process
