"""Writing files so that a kill never leaves half of one, and reading them back with their hash.

Every file bench writes (artifacts, leaderboards, pages, PNGs) goes through `write_atomic`: the
bytes go to a temporary file in the same folder, are flushed and fsynced, get the permissions the
user's umask allows (mkstemp would leave 0600 and lock collaborators on a shared store out), and
are renamed over the target; the folder is then fsynced so the rename itself survives a crash.
Temporary names carry the host and process id, so the next open can tell a dead writer's leftovers
from a live one's (`is_leftover`).
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

_HOST = socket.gethostname().replace("-", "_").replace(".", "_")[:40] or "host"


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def owner_tag() -> str:
    """`<host>-<pid>`: which process made a temporary file or folder."""
    return f"{_HOST}-{os.getpid()}"


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems do not support syncing a directory
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, content: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{owner_tag()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json_bytes(obj))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def is_leftover(name: str, max_age_s: float, age_s: float) -> bool:
    """Is a temporary file/folder named `...<host>-<pid>...` a dead writer's leftover? On this host
    we ask whether the pid is alive; another host's (a shared store) only after `max_age_s`."""
    for part in name.replace(".", " ").split():
        host, sep, pid = part.rpartition("-")
        if sep and pid.isdigit() and host == _HOST:
            return not _pid_alive(int(pid))
    return age_s > max_age_s
