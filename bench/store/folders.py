"""Atomic artifact folders and per-node locks: the store's write half.

An artifact is written into a staging folder under tmp/ named after its host and pid, then renamed
into place; the next open removes a dead writer's leftovers at once and never a live one's. A
process computing a node holds `locks/<id>.lock` (an advisory `flock`); a second process wanting
the same node waits, then finds the artifact made and reuses it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from pathlib import Path

from bench.core.files import fsync_dir, is_leftover, owner_tag, umask

_LEFTOVER_AGE_S = 24 * 3600  # another host's temporary files: removed after a day


class AtomicFolders:
    """The write half of `Store` (bench/store/artifacts.py)."""

    def _staging(self) -> Path:
        path = self.tmp_dir / f"{owner_tag()}.{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        return path

    def _commit_dir(self, staging: Path, final: Path, valid_now) -> None:
        """Rename `staging` to `final`. An existing `final` is kept only if `valid_now()` says it is
        a complete, valid artifact (another process finished the same node); a half-present or
        corrupt one, or any with `valid_now` None (a forced recompute), is set aside and replaced."""
        for staging_file in staging.iterdir():
            os.chmod(staging_file, 0o666 & ~_umask_cached())
        os.chmod(staging, 0o777 & ~_umask_cached())
        if final.exists():
            if valid_now is not None and valid_now():
                shutil.rmtree(staging, ignore_errors=True)
                return
            aside = self.tmp_dir / f"{owner_tag()}.replaced.{uuid.uuid4().hex}"
            os.replace(final, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(staging, final)
        fsync_dir(final.parent)

    def _remove_leftovers(self) -> None:
        """Staging folders and temporary files of writers that died (killed runs)."""
        now = time.time()
        for entry in self.tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                if is_leftover(entry.name, _LEFTOVER_AGE_S, now - entry.stat().st_mtime):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        for folder in (self.root, self.probes_dir):
            for entry in folder.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    if is_leftover(entry.name, _LEFTOVER_AGE_S, now - entry.stat().st_mtime):
                        entry.unlink()

    @contextlib.contextmanager
    def lock(self, node_id: str):
        """Hold the node's lock: one process computes a node at a time; the others wait, then
        find its artifact made. Advisory `flock` (POSIX; on a network filesystem it needs lock support)."""
        from bench.store.records import check_id

        path = self.locks_dir / f"{check_id(node_id, 'node id')}.lock"
        try:
            import fcntl
        except ImportError:  # no flock (Windows): the atomic renames still keep every artifact whole
            yield
            return
        with open(path, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


_UMASK: list[int] = []


def _umask_cached() -> int:
    if not _UMASK:
        _UMASK.append(umask())
    return _UMASK[0]


STORE_ENTRIES = ("models", "records", "probes", "binarization", "tmp", "locks", "store.json", "index.sqlite")


def refuse_links(root: Path) -> None:
    """A store writes only inside its own folder: an entry of it that is a symbolic link (a `tmp/` or
    `locks/` pointing elsewhere) would make staging folders, locks or artifacts land outside what
    the user named; a `store.json` that is not a plain file is not a store's. Either is refused
    before anything is written."""
    from bench.core.errors import BenchInputError

    for name in STORE_ENTRIES:
        path = root / name
        if path.is_symlink():
            raise BenchInputError(f"{str(path)!r} is a symbolic link: a store's entries must lie inside it "
                                  f"(refusing to write outside --out)")
    identity = root / "store.json"
    if identity.exists() and not identity.is_file():
        raise BenchInputError(f"{str(identity)!r} is not a plain file: {str(root)!r} is not a distill-bench store")
