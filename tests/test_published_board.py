"""The board published in this repository (`leaderboard/`) against the store committed beside it
(`leaderboard/store/`): every artifact verifies, and the pages are exactly what that store
produces. A page edited by hand, a record added without republishing, or a change to the code
that renders pages without republishing them fails here (docs/leaderboard.md, "The published
store")."""
from __future__ import annotations

from pathlib import Path

from bench.cli import main

import pytest

REPO = Path(__file__).resolve().parent.parent
BOARD = REPO / "leaderboard"
STORE = BOARD / "store"


@pytest.fixture()
def at_the_root(monkeypatch):
    """The paths as `make republish` passes them, relative to the repository: the pages' commands
    name the store that way."""
    monkeypatch.chdir(REPO)


def test_the_committed_store_verifies(at_the_root, capsys):
    assert main(["store", "verify", "--out", "leaderboard/store"]) == 0
    assert "0 corrupt" in capsys.readouterr().out


def test_the_published_pages_are_what_the_committed_store_produces(at_the_root, capsys):
    code = main(["leaderboard", "publish", "--check", "--include-store", "--out", "leaderboard/store",
                 "--dest", "leaderboard"])
    assert code == 0, capsys.readouterr().out


def test_no_published_file_names_a_folder_of_the_machine_that_made_it():
    home = str(Path.home())
    for path in BOARD.rglob("*"):
        if path.is_file() and path.suffix in (".md", ".json") and STORE not in path.parents:
            text = path.read_text()
            assert "/tmp/" not in text and home not in text and "/work/" not in text, path
