"""Paths a user names (`--out`, `--dest`, `--output`, `--leaderboard`, `--data-root`): checked
before any work, with one line on anything unusable."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.core.errors import BenchInputError


def check_path_text(text: str, flag: str) -> Path:
    if not text or not text.strip() or "\0" in text:
        raise BenchInputError(f"{flag} {text!r} must name a path")
    path = Path(text)
    too_long = [part for part in path.parts if len(part.encode()) > 255]
    if too_long or len(os.fsencode(str(path.resolve()))) > 4000:
        raise BenchInputError(f"{flag} {text[:60]!r}…: the path is too long for the filesystem")
    return path


def _nearest_existing(path: Path) -> Path:
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def writable_folder(base: Path) -> bool:
    """Whether files can be created in `base`, found by trying (`os.access` says yes for root under
    /proc and /sys, where nothing can be created): an empty temporary folder, removed at once."""
    if not base.is_dir():
        return False
    try:
        trial = tempfile.mkdtemp(prefix=".bench-write-test-", dir=base)
    except OSError:
        return False
    shutil.rmtree(trial, ignore_errors=True)
    return True


def check_folder(text: str, flag: str, *, must_exist: bool) -> Path:
    """A folder bench will read (`must_exist`) or create and write: one line on anything unusable."""
    path = check_path_text(text, flag)
    if path.exists() and not path.is_dir():
        raise BenchInputError(f"{flag} {text!r} is a file, not a folder")
    if must_exist and not path.is_dir():
        raise BenchInputError(f"{flag} {text!r} does not exist (run `bench run` first or pass the right folder)")
    base = _nearest_existing(path)
    if not writable_folder(base):
        raise BenchInputError(f"{flag} {text!r}: {str(base)!r} is not a writable folder")
    return path


def check_file_target(text: str, flag: str) -> Path:
    """A file bench will write."""
    path = check_path_text(text, flag)
    if path.is_dir() or text.endswith(os.sep):
        raise BenchInputError(f"{flag} {text!r} is a folder; it must name a file")
    base = _nearest_existing(path.parent if str(path.parent) else Path("."))
    if not writable_folder(base):
        raise BenchInputError(f"{flag} {text!r}: {str(base)!r} is not a writable folder")
    return path


def check_leaderboard_path(text: str | None, store: str) -> Path:
    """Where `bench run` writes its leaderboard (default: STORE/leaderboard.md), checked before any work."""
    out = Path(text) if text else Path(store) / "leaderboard.md"
    if text is not None and (not text.strip() or out.is_dir()):
        raise BenchInputError(f"--leaderboard {text!r} must name a file")
    parent = _nearest_existing(out.parent)
    if not writable_folder(parent):
        raise BenchInputError(f"--leaderboard {str(out)!r}: {str(parent)!r} is not a writable folder")
    return out
