"""Nothing written or deleted outside what the user named (issue 19): `publish --replace` keeps the
user's own files, a symbolic-link `--dest` or store entry is refused before anything is written,
and a `store.json` that is a folder is one clear line, not a traceback."""
from __future__ import annotations

import os

import pytest

from bench.cli import main
from recordkit import make_record, model_spec, write_store

SPEC = model_spec("d000000000000001", "vanilla")


@pytest.fixture
def store(tmp_path):
    return write_store(tmp_path / "store", [make_record(SPEC, "pgd", "linf", 0.3, [True] * 5 + [False] * 5)], [SPEC])


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_publish_replace_keeps_the_users_own_files(store, tmp_path, capsys):
    dest = tmp_path / "board"
    dest.mkdir()
    mine = {"notes.md": "my notes", "data.json": "{\"mine\": 1}", "photo.png": "not a page"}
    for name, text in mine.items():
        (dest / name).write_text(text)
    assert main(["leaderboard", "publish", "--out", str(store), "--dest", str(dest)]) == 2  # not ours: refused
    assert main(["leaderboard", "publish", "--out", str(store), "--dest", str(dest), "--replace"]) == 0
    assert main(["leaderboard", "publish", "--out", str(store), "--dest", str(dest), "--replace"]) == 0
    for name, text in mine.items():
        assert (dest / name).read_text() == text
    assert (dest / "leaderboard.json").is_file()
    capsys.readouterr()
    assert main(["leaderboard", "publish", "--check", "--out", str(store), "--dest", str(dest)]) == 0


def test_a_symbolic_link_dest_is_refused_and_its_target_untouched(store, tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "board"
    os.symlink(target, link)
    capsys.readouterr()
    assert main(["leaderboard", "publish", "--out", str(store), "--dest", str(link)]) == 2
    err = capsys.readouterr().err
    assert "symbolic link" in err and len(err.strip().splitlines()) == 1
    assert _tree(target) == []


@pytest.mark.parametrize("entry", ["tmp", "locks", "records"])
def test_a_store_entry_that_is_a_symbolic_link_is_refused_before_anything_is_written(store, tmp_path, capsys, entry):
    outside = tmp_path / "outside"
    outside.mkdir()
    path = store / entry
    if path.exists():
        os.rename(path, outside / "moved")
    os.symlink(outside, path)
    before = _tree(outside)
    capsys.readouterr()
    assert main(["leaderboard", "show", "--out", str(store)]) == 2
    err = capsys.readouterr().err
    assert "symbolic link" in err and len(err.strip().splitlines()) == 1
    assert main(["list", "models", "--out", str(store)]) == 2
    assert _tree(outside) == before


def test_a_store_json_that_is_a_folder_is_one_clear_line(store, capsys):
    (store / "store.json").unlink()
    (store / "store.json").mkdir()
    capsys.readouterr()
    for verb in (["leaderboard", "show"], ["list", "models"]):
        assert main([*verb, "--out", str(store)]) == 2
        err = capsys.readouterr().err
        assert "not a plain file" in err and len(err.strip().splitlines()) == 1


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(store, tmp_path, capsys, monkeypatch):
    import errno

    import bench.core.files as files

    dest = tmp_path / "board"
    real = files.os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    capsys.readouterr()
    assert main(["leaderboard", "publish", "--out", str(store), "--dest", str(dest)]) == 1
    err = capsys.readouterr().err
    assert "no space left on device" in err and len(err.strip().splitlines()) == 1
    assert not [p for p in dest.rglob("*") if p.is_file()]  # nothing half-written was renamed into place
    monkeypatch.setattr(files.os, "fsync", real)
    assert main(["leaderboard", "publish", "--out", str(store), "--dest", str(dest)]) == 0
    capsys.readouterr()
    main(["store", "verify", "--out", str(store)])
    # nothing the full disk touched is corrupt (the fixture's hand-written specs carry no key, and say so)
    problems = [line for line in capsys.readouterr().out.splitlines() if "is corrupt" in line]
    assert problems and all("no key: nothing ties its id" in line for line in problems)


def test_a_fifo_where_a_spec_should_be_never_hangs_a_command(store):
    import subprocess
    import sys

    folder = store / "models" / "d000000000000001"
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.json"
    spec.unlink(missing_ok=True)
    os.mkfifo(spec)
    done = subprocess.run([sys.executable, "-m", "bench.cli", "list", "models", "--out", str(store)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1)
    assert "Traceback" not in done.stderr
