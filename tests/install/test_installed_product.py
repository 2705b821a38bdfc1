"""The installed product: the wheel and the sdist built from this checkout, each installed into a fresh virtual
environment (no editable install, the checkout not on sys.path), driven as a user drives it.

Built once per run (~5 s); the wheel is smoked in full (ingest, text and image queries, JSON, status, a running
service, eval), the sdist install lightly (it builds the same wheel; imports, version, status). Needs the fixture
model and the DEV photos in ../shared: without them it skips, saying so.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEV, FIXTURE_HF_HOME, FIXTURE_MODEL
from tests.installed import BUILD_LOG, Installed, build, expected_wheel_files, wheel_files

CHECKOUT = Path(__file__).resolve().parents[2]
PHOTOS = 12

pytestmark = pytest.mark.skipif(
    not (FIXTURE_HF_HOME / "hub").is_dir() or not (DEV / "images").is_dir(),
    reason=f"../shared is missing (no fixture model under {FIXTURE_HF_HOME} or no DEV photos under {DEV})",
)


def check_json(kind: str, document: dict[str, Any]) -> None:
    """Validate ``document``, the JSON output of ``kind`` (``hits``, ``ingest``, ``status``, ``eval``), against its
    documented schema (issue 11, item 10; the same files the wheel ships, see the wheel test)."""
    import jsonschema

    from mmsearch import schemas

    jsonschema.validate(document, schemas.load(kind), cls=jsonschema.Draft202012Validator)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build(CHECKOUT, tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A user's world outside the checkout: a working folder, a home, 12 DEV photos, a query file, an env."""
    world = tmp_path_factory.mktemp("user")
    photos = world / "photos"
    photos.mkdir()
    names = sorted(p.name for p in (DEV / "images").glob("*.jpg"))[:PHOTOS]
    for name in names:
        shutil.copy2(DEV / "images" / name, photos / name)
    captions = {}
    with (DEV / "captions.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["image"] in names and row["n"] == "0":
                captions[row["image"]] = row["caption"]
    queries = world / "queries.tsv"
    queries.write_text("".join(f"{captions[name]}\t{name}\n" for name in names), encoding="utf-8")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MMSEARCH_", "PYTHON", "VIRTUAL_ENV")) and name != "PATH"
    }
    env.update(
        PATH="/usr/bin:/bin",
        HOME=str(world / "user-home"),
        XDG_CONFIG_HOME=str(world / "config"),
        MMSEARCH_HOME=str(world / "mmsearch-home"),
        HF_HOME=str(FIXTURE_HF_HOME),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    work = world / "work"
    work.mkdir()
    return {"world": world, "photos": photos, "names": names, "queries": queries, "env": env, "cwd": work}


@pytest.fixture(scope="module")
def from_wheel(built: tuple[Path, Path], user: dict[str, Any]) -> Installed:
    return Installed.create(user["world"] / "venv-wheel", built[0], user["cwd"], user["env"])


def test_the_wheel_holds_every_package_and_the_migrations(built: tuple[Path, Path]) -> None:
    wheel, _ = built
    held = wheel_files(wheel)
    expected = expected_wheel_files(CHECKOUT)
    assert "mmsearch/web/server.py" in expected and "mmsearch/migrations/env.py" in expected
    assert "mmsearch/web/static/app.js" in expected  # the page ships in the wheel
    assert "mmsearch/search/__init__.py" in expected and "mmsearch/search/hybrid.py" in expected  # the query side
    assert expected - held == set()
    assert "mmsearch/py.typed" in held
    assert {f"mmsearch/schemas/{name}.json" for name in ("hits", "ingest", "status", "eval", "check")} <= held
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in held)


def test_the_build_names_every_package_it_ships(built: tuple[Path, Path]) -> None:
    """setuptools finds no folder it would ship without its being a declared package (the page's static files,
    the migrations' versions/), and uses no deprecated configuration."""
    log = (built[0].parent.parent / BUILD_LOG).read_text()
    assert "would be ignored" not in log and "is absent from the `packages` configuration" not in log, log[-3000:]
    assert "deprecated" not in log, log[-3000:]


def test_the_sdist_holds_the_source_tree(built: tuple[Path, Path]) -> None:
    import tarfile

    _, sdist = built
    with tarfile.open(sdist) as archive:
        held = {Path(*Path(name).parts[1:]).as_posix() for name in archive.getnames()}
    needed = {name.replace("mmsearch/migrations/", "migrations/", 1) for name in expected_wheel_files(CHECKOUT)}
    assert needed | {"pyproject.toml", "setup.py", "LICENSE", "README.md"} <= held


def test_the_installed_package_is_the_wheel_not_the_checkout(from_wheel: Installed) -> None:
    where = json.loads(
        from_wheel.python(
            "import json, sys, mmsearch, mmsearch.service, mmsearch.migrations; "
            "print(json.dumps({'file': mmsearch.__file__, 'path': sys.path, 'version': mmsearch.__version__}))"
        )
    )
    assert Path(where["file"]).is_relative_to(from_wheel.venv), where["file"]
    assert not any(entry and Path(entry).resolve() == CHECKOUT for entry in where["path"])
    assert where["version"] == metadata.version("mmsearch")


def test_help_version_and_install_hint(from_wheel: Installed) -> None:
    assert "ingest" in from_wheel.mmsearch("--help")
    assert from_wheel.mmsearch("--version") == f"mmsearch, version {metadata.version('mmsearch')}\n"
    assert from_wheel.mmsearch("-V") == from_wheel.mmsearch("--version")
    hint = from_wheel.python("from mmsearch.hints import install_hint; print(install_hint('clip'))")
    # Installed from a wheel file: where it came from cannot be told, so both forms are given.
    assert "[clip]" in hint and "mmsearch-checkout" in hint and "'mmsearch[clip]'" in hint


def test_a_user_session(from_wheel: Installed, user: dict[str, Any]) -> None:
    """ingest, query text and image, --json, status, serve + a query through it, eval."""
    photos, names = user["photos"], user["names"]
    report = json.loads(from_wheel.mmsearch("--model", FIXTURE_MODEL, "ingest", photos, "--json"))
    check_json("ingest", report)
    assert (report["added"], report["failed_count"]) == (PHOTOS, 0)

    table = from_wheel.mmsearch("query", "a dog running on the grass", "-k", "3")
    assert "top 3" in table
    answer = json.loads(from_wheel.mmsearch("query", "a dog running on the grass", "-k", "3", "--json"))
    check_json("hits", answer)
    assert len(answer["hits"]) == 3 and all(Path(hit["path"]).parent == photos for hit in answer["hits"])
    by_image = json.loads(from_wheel.mmsearch("query", "--image", photos / names[4], "-k", "1", "--json"))
    assert by_image["hits"][0]["path"] == str(photos / names[4])

    status = json.loads(from_wheel.mmsearch("status", "--json"))
    check_json("status", status)
    assert status["model"]["spec"] == FIXTURE_MODEL and status["vectors"] == PHOTOS

    evaluation = json.loads(from_wheel.mmsearch("eval", user["queries"], "--mode", "dense", "--json"))
    check_json("eval", evaluation)
    assert "dense" in json.dumps(evaluation)

    served = served_query(from_wheel, user)
    assert served["hits"] == answer["hits"]


def served_query(installed: Installed, user: dict[str, Any]) -> dict[str, Any]:
    """Start `mmsearch -v serve`, query through it (the CLI finds it by itself), stop it; the query's JSON."""
    service = installed.popen("-v", "serve")
    discovery = Path(user["env"]["MMSEARCH_HOME"]) / "service.json"
    try:
        deadline = time.monotonic() + 120
        while not discovery.is_file():
            assert service.poll() is None, f"serve exited: {service.communicate()}"
            assert time.monotonic() < deadline, "serve did not start in 120 s"
            time.sleep(0.2)
        answer = json.loads(installed.mmsearch("query", "a dog running on the grass", "-k", "3", "--json"))
        check_json("hits", answer)
    finally:
        service.send_signal(signal.SIGTERM)
        _, log = service.communicate(timeout=30)
    assert "/api/v1/search" in log, f"the query did not go through the service; its log:\n{log}"
    assert not discovery.exists()
    return answer


@pytest.fixture(scope="module")
def from_sdist(built: tuple[Path, Path], user: dict[str, Any]) -> Iterator[Installed]:
    yield Installed.create(user["world"] / "venv-sdist", built[1], user["cwd"], user["env"])


def test_the_sdist_installs_a_working_product(from_sdist: Installed, user: dict[str, Any]) -> None:
    code = (
        "import json, pkgutil, mmsearch; "
        "print(json.dumps([m.name for m in pkgutil.walk_packages(mmsearch.__path__, 'mmsearch.') if m.ispkg]))"
    )
    packages = set(json.loads(from_sdist.python(code)))
    source_packages = {
        ".".join(init.parent.relative_to(CHECKOUT).parts) for init in (CHECKOUT / "mmsearch").rglob("__init__.py")
    } - {"mmsearch"}
    assert source_packages | {"mmsearch.migrations"} <= packages
    assert from_sdist.mmsearch("--version") == f"mmsearch, version {metadata.version('mmsearch')}\n"
    home = str(user["world"] / "sdist-home")
    report = json.loads(from_sdist.mmsearch("--home", home, "--model", "fake:16", "ingest", user["photos"], "--json"))
    assert report["added"] == PHOTOS
    assert json.loads(from_sdist.mmsearch("--home", home, "status", "--json"))["model"]["spec"] == "fake:16"
