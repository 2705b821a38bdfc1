"""Install hints name what the user can actually install: the checkout path, the index name, or both."""

import json
from pathlib import Path

import pytest

from mmsearch import hints


def test_a_checkout_install_is_named_by_its_path() -> None:
    record = json.dumps({"url": "file:///home/me/src/mm%20search", "dir_info": {"editable": True}})
    assert hints.checkout_of(record) == "/home/me/src/mm search"


@pytest.mark.parametrize(
    "record",
    [
        json.dumps({"url": "file:///tmp/mmsearch-0.1.0-py3-none-any.whl", "archive_info": {}}),
        json.dumps({"url": "https://example.org/mmsearch.git", "vcs_info": {"vcs": "git"}}),
        "not json",
    ],
)
def test_anything_but_a_local_folder_is_not_a_checkout(record: str) -> None:
    assert hints.checkout_of(record) is None


def test_hint_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hints, "install_source", lambda: "/src/mmsearch")
    assert hints.install_hint("clip") == "pip install '/src/mmsearch[clip]'"
    monkeypatch.setattr(hints, "install_source", lambda: "index")
    assert hints.install_hint("audio") == "pip install 'mmsearch[audio]'"
    monkeypatch.setattr(hints, "install_source", lambda: None)
    both = hints.install_hint("postgres")
    assert "/path/to/mmsearch-checkout[postgres]" in both and "'mmsearch[postgres]'" in both


def test_this_checkout_names_itself() -> None:
    # The tests run on an editable install of this checkout: the hint must name it, not a package index.
    root = Path(hints.__file__).resolve().parent.parent
    assert hints.install_hint("clip") == f"pip install '{root}[clip]'"


def test_no_module_hints_a_package_that_is_not_on_an_index() -> None:
    package = Path(hints.__file__).resolve().parent
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        if path.name != "hints.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "pip install 'mmsearch[" in line
    ]
    assert offenders == []
