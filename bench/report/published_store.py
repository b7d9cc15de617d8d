"""The store behind a published board, published beside it (`bench leaderboard publish
--include-store`): the sealed artifacts a reviewer needs to re-verify every number (`bench store
verify --out DEST/store`), to check that the pages are what the store produces (`bench leaderboard
publish --check --include-store --out DEST/store --dest DEST`), and to add a defense without
recomputing the rest (`bench run --out DEST/store ...`).

Only artifacts that verify are copied, byte for byte as sealed: `store.json`, each model's
`spec.json` and `model.safetensors` (its hash checked here), each record's `record.json` and
`per_example.csv`, the probes and binarization files. The index, locks and staging folders are
the store's caches: never copied, and ignored by git inside the copy, as is the leaderboard a
`bench run --out DEST/store` writes there by default.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from bench.core.errors import BenchInputError
from bench.core.files import sha256_bytes
from bench.store.artifacts import Store
from bench.store.records import valid_id

FOLDER = "store"
IGNORED = (b"# caches a store rebuilds (bench/store): never published\nindex.sqlite*\nlocks/\ntmp/\n"
           b"# what `bench run --out` writes beside them (its default --leaderboard): a view, not the store\n"
           b"leaderboard.md\nleaderboard.json\n")
_FILES = {"models": ("spec.json", "model.safetensors"), "records": ("record.json", "per_example.csv")}


def store_files(store: Store) -> dict[str, bytes]:
    """`store/…` relative path → bytes of every verified artifact of `store`."""
    def read(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BenchInputError(f"cannot publish the store: {path} is unreadable ({exc.strerror})") from None

    files = {f"{FOLDER}/store.json": read(store.root / "store.json"), f"{FOLDER}/.gitignore": IGNORED}
    for spec in store.models():
        mid = spec["model_id"]
        folder = store.models_dir / mid
        weights = read(folder / "model.safetensors")
        if sha256_bytes(weights) != spec["integrity"]["files"]["model.safetensors"]:
            raise BenchInputError(f"cannot publish the store: model {mid}'s weights differ from their hash "
                                  f"(`bench store verify --out {store.root}`)")
        files[f"{FOLDER}/models/{mid}/spec.json"] = read(folder / "spec.json")
        files[f"{FOLDER}/models/{mid}/model.safetensors"] = weights
    for rec in store.records():
        rid = rec["record_id"]
        for name in _FILES["records"]:
            files[f"{FOLDER}/records/{rid}/{name}"] = read(store.records_dir / rid / name)
    for kind, items, id_field in (("probes", store.all_probes(), "probe_id"),
                                  ("binarization", store.all_binarizations(), "binarization_id")):
        for item in items:
            path = store.root / kind / f"{item[id_field]}.json"
            files[f"{FOLDER}/{kind}/{item[id_field]}.json"] = read(path)
    return files


def is_store_file(parts: tuple[str, ...]) -> bool:
    """Whether a relative path (its parts) is one `store_files` makes: nothing else is written there."""
    if not parts or parts[0] != FOLDER:
        return False
    rest = parts[1:]
    if len(rest) == 1:
        return rest[0] in ("store.json", ".gitignore")
    if len(rest) == 2 and rest[0] in ("probes", "binarization"):
        return rest[1].endswith(".json") and valid_id(rest[1][:-5])
    if len(rest) == 3 and rest[0] in _FILES:
        return valid_id(rest[1]) and rest[2] in _FILES[rest[0]]
    return False


def rehome(command: str, store_path: str) -> str:
    """A recorded command with its `--out` pointing at the published store (`--out DEST/store`):
    the command a reader reruns against the copy beside the pages."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        return command
    out: list[str] = []
    for token in tokens:
        if out and out[-1] == "--out":  # the value after `--out`
            token = store_path
        elif token.startswith("--out="):
            token = f"--out={store_path}"
        out.append(token)
    return shlex.join(out)
