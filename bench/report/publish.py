"""`bench leaderboard publish`: the store's assessments → pages under --dest.

- `<dataset>-<norm>.md` (+ `curves-<dataset>-<norm>.png` when budgets were swept): one page per
  dataset × threat model, a ranked table and a "not ranked" table per budget, details, evidence;
- `models/<model_id>.md` (+ `-gradients.png`): a page per model with every rule's finding, every
  record (each config and slice) per threat model, its probes;
- `<dataset>-<defense>-temperature.md/.png`: JSMA and C&W against the distillation temperature;
- `leaderboard.json`: the whole board for programs (docs/schema/leaderboard.schema.json);
- `README.md`: the index; `.distill-bench-publish.json`: which store published which files.

Pages are pure views of the assessments (same store, byte-identical files). Safety: every path is
built from validated ids and checked to stay under --dest; a destination holding pages of another
store (or files not published by distill-bench) is refused unless `replace=True`; files this store
published earlier and no longer produces are removed; `stale()` also reports orphaned pages.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd

from bench.assess.assessment import assess
from bench.report.board import build_board
from bench.core.errors import BenchInputError
from bench.store.records import Record, ResultSet, valid_id
from bench.report.serialize import board_json_text
from bench.report.curves import worst_case_bands
from bench.report.markdown import md_table, model_markdown, page_markdown, pct
from bench.report.plots import gradient_histogram_png, security_curve_png, temperature_png, training_curve_png
from bench.report.published_store import FOLDER, is_store_file, rehome, store_files
from bench.report.tables import portable
from bench.core.files import write_atomic
from bench.store.artifacts import Store

MARKER = ".distill-bench-publish.json"
PAGE_SUFFIXES = (".md", ".png", ".json")


def _commands(records: list[Record]) -> list[str]:
    return sorted({r.command for r in records if r.command})


def temperature_sweep(records: list[Record]) -> dict[tuple, pd.DataFrame]:
    """(dataset, defense, n) → per temperature: JSMA success (Papernot 2016's metric) beside C&W's
    unbounded success and median L2 (Carlini & Wagner 2016's rebuttal), for models of one defense
    trained at several temperatures with otherwise equal configs."""
    rows = defaultdict(list)
    for rec in records:
        cfg = dict(rec.defense_config)
        if "temperature" not in cfg:
            continue
        temperature = cfg.pop("temperature")
        key = (rec.dataset, rec.defense, rec.n, json.dumps(cfg, sort_keys=True))
        m = rec.metrics
        entry = {"temperature": temperature}
        if rec.attack.name == "jsma" and rec.attack.loss == "softmax":
            entry["jsma success"] = m.success_rate
        elif rec.attack.name == "cw":
            entry["cw success (any size)"] = m.unbounded_success_rate
            entry["cw median l2"] = m.perturbation_median if m.perturbation_median is not None else float("nan")
        elif rec.attack.name == "pgd" and rec.budget.norm == "linf":
            entry[f"pgd linf {rec.budget.eps:g} robust"] = m.robust_acc
        else:
            continue
        rows[key].append(entry)
    out = {}
    for (dataset, defense, n, _), entries in sorted(rows.items()):
        frame = pd.DataFrame(entries).groupby("temperature").first().sort_index()
        if len(frame) > 1:
            out[(dataset, defense, n)] = frame
    return out


def build_pages(store: Store, dataset: str | None = None, store_path: str | None = None) -> dict[str, bytes]:
    """Relative path → content of every published file. `store_path`: the store is published beside
    the pages (bench/report/published_store.py) at this path, which the pages' commands then name."""
    results = ResultSet.from_store(store, dataset)
    assessments = assess(results)
    move = (lambda c: rehome(c, store_path)) if store_path else (lambda c: c)
    commands = defaultdict(set)
    for r in results.records:
        if r.command:
            commands[(r.dataset, r.budget.norm)].add(move(r.command))
    board = build_board(assessments, {k: sorted(v) for k, v in commands.items()})
    pages: dict[str, bytes] = {}
    index = ["# distill-bench published leaderboards", "",
             "Produced by `bench leaderboard publish` from the records of one store; every number can be re-derived "
             "by re-running the commands on its page. How rows are ranked: docs/leaderboard.md; the masking rules: "
             "docs/masking.md (both in the distill-bench repository). Machine-readable: "
             "[leaderboard.json](leaderboard.json).", ""]
    for page in board.pages:
        name = f"{page.dataset}-{page.norm}"
        curves = worst_case_bands(page)
        png = f"curves-{name}.png" if curves else None
        if png:
            pages[png] = security_curve_png(f"Security curves · {page.dataset} · {page.norm}", curves, page.norm)
        pages[f"{name}.md"] = page_markdown(page, link=True, curve_png=png).encode()
        ranked = sum(len(t.ranked) for t in page.tables)
        rows = sum(len(t.rows) for t in page.tables)
        index.append(f"- [{page.dataset} · {page.norm}]({name}.md): {len(page.assessments)} models, "
                     f"{ranked} of {rows} rows ranked")

    for key, frame in temperature_sweep(results.records).items():
        ds, defense, n = key
        name = f"{ds}-{defense}-temperature"
        pages[f"{name}.png"] = temperature_png(key, frame)
        shown = frame.copy()
        for col in shown.columns:
            shown[col] = shown[col].map(lambda v: f"{v:.3f}") if "median" in col else shown[col].map(pct)
        table = md_table(["temperature", *shown.columns], "r" * (len(shown.columns) + 1),
                         [[f"{t:g}", *row] for t, row in zip(shown.index, shown.itertuples(index=False))])
        pages[f"{name}.md"] = (f"# {defense} on {ds}: temperature sweep (n = {n})\n\n"
                               "Papernot et al. 2016 measured JSMA's success falling as T grows; Carlini & Wagner "
                               "2016 showed C&W still succeeds on every input. Both, from the same models "
                               "(success rates in %):\n\n" + "\n".join(table)
                               + f"\n\n![temperature sweep]({name}.png)\n").encode()
        index.append(f"- [{defense} temperature sweep on {ds}]({name}.md)")

    by_model = results.by_model()
    for model_id, m in sorted(assessments.items()):
        histogram = None
        if m.probes is not None and m.probes.grad_l1_per_example:
            histogram = f"{model_id}-gradients.png"
            pages[f"models/{histogram}"] = gradient_histogram_png(m.probes.grad_l1_per_example, board.labels[model_id])
        curve_png = None
        if any(c.get("epochs") for c in m.info.training_curves):
            curve_png = f"{model_id}-training.png"
            pages[f"models/{curve_png}"] = training_curve_png(board.labels[model_id], m.info.training_curves)
        pages[f"models/{model_id}.md"] = model_markdown(m, board.labels[model_id],
                                                        commands=[move(c) for c in _commands(by_model[model_id])],
                                                        histogram=histogram, curve_png=curve_png).encode()
    pages["leaderboard.json"] = board_json_text(board).encode()
    if store_path:
        dest_path = str(Path(store_path).parent)
        verify = portable(f"bench store verify --out {store_path}")
        check = portable(f"bench leaderboard publish --check --include-store --out {store_path} --dest {dest_path}")
        index += ["", f"The sealed store behind these pages is [{FOLDER}/]({FOLDER}/): `{verify}` re-verifies every "
                      f"artifact, `{check}` that these pages are what it produces, and the pages' commands rerun "
                      f"against it."]
        pages.update(store_files(store))
    pages["README.md"] = ("\n".join(index) + "\n").encode()
    for rel in pages:  # every name comes from validated ids and fixed words; check anyway
        if not _safe_relative(rel):
            raise BenchInputError(f"refusing to publish {rel!r}: not a plain path under the destination")
    return pages


def _safe_relative(rel: str) -> bool:
    """A page name directly under dest, or models/<valid model id>…; nothing else is ever written."""
    path = Path(rel)
    parts = path.parts
    if not parts or path.is_absolute() or any(p in ("..", ".", "") for p in parts):
        return False
    if len(parts) == 1:
        return True
    return (len(parts) == 2 and parts[0] == "models" and valid_id(parts[1][:16])) or is_store_file(parts)


def _read_marker(dest: Path) -> dict | None:
    path = dest / MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
        return marker if isinstance(marker, dict) else {}
    except (OSError, ValueError):
        return {}


def _existing_pages(dest: Path) -> set[str]:
    """The pages an earlier publish may have left: what its marker lists, and the model pages
    under `models/` (named by a model id: names only a publish makes). A file of the user's own
    beside the pages (notes.md, data.json, photo.png) is never one of them."""
    found = set((_read_marker(dest) or {}).get("files", []))
    models = dest / "models"
    if models.is_dir() and not models.is_symlink():
        for path in models.iterdir():
            if path.is_file() and path.suffix in PAGE_SUFFIXES and valid_id(path.name[:16]):
                found.add(str(path.relative_to(dest)))
    return {rel for rel in found if _safe_relative(rel)}


def check_destination(store: Store, dest: Path, replace: bool) -> dict | None:
    """Refuse a destination that holds another store's pages or foreign files, unless `replace`."""
    if dest.is_symlink() or any(p.is_symlink() for p in (dest / "models", dest / MARKER)):
        raise BenchInputError(f"--dest {str(dest)!r} is (or holds) a symbolic link: name the real folder "
                              f"(pages are written only inside the folder named)")
    if dest.exists() and not dest.is_dir():
        raise BenchInputError(f"--dest {str(dest)!r} is a file, not a folder")
    marker = _read_marker(dest)
    if replace:
        return marker
    if marker is not None and marker.get("store_id") != store.store_id:
        raise BenchInputError(f"--dest {str(dest)!r} holds pages published from another store "
                              f"({marker.get('store', 'unknown')}); pass --replace to replace them")
    if marker is None and dest.is_dir() and any(dest.iterdir()):
        raise BenchInputError(f"--dest {str(dest)!r} is not empty and was not published by distill-bench from "
                              f"this store; pass --replace to replace its pages")
    return marker


_write_atomic = write_atomic  # one atomic writer for every file bench writes (bench/core/files.py)


def _store_path(dest: Path, include_store: bool) -> str | None:
    return str(dest / FOLDER) if include_store else None


def publish(store: Store, dest: Path, dataset: str | None = None, replace: bool = False,
            include_store: bool = False) -> list[Path]:
    """Write the pages (and, `include_store`, the store behind them under DEST/store); remove the
    files this destination held that are no longer produced; return the files that changed."""
    marker = check_destination(store, dest, replace)
    pages = build_pages(store, dataset, _store_path(dest, include_store))
    root = dest.resolve()
    changed = []
    for rel, content in sorted(pages.items()):
        path = dest / rel
        if root not in path.resolve().parents:
            raise BenchInputError(f"refusing to write {path}: outside --dest")
        if path.is_symlink():
            raise BenchInputError(f"refusing to write {path}: a symbolic link inside --dest")
        if path.is_file() and path.read_bytes() == content:
            continue
        _write_atomic(path, content)
        changed.append(path)
    if dataset is None:  # a full publish owns the destination: drop what it no longer produces
        # only what a distill-bench publish wrote there is ever removed (its marker's list, model pages
        # named by an id): with --replace too, a user's own notes.md or photo.png beside the pages stays
        for rel in sorted(_existing_pages(dest) - set(pages)):
            path = dest / rel
            if _safe_relative(rel) and path.is_file() and not path.is_symlink() and root in path.resolve().parents:
                path.unlink()
                changed.append(path)
        files = sorted(pages)
    else:
        files = sorted(set((marker or {}).get("files", [])) | set(pages))
    # the store by its folder's name only: a published folder holds no path of the machine that made it
    marker = {"store_id": store.store_id, "store": f"DIR/{store.root.resolve().name}", "files": files}
    _write_atomic(dest / MARKER, (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode())
    return changed


def stale(store: Store, dest: Path, dataset: str | None = None, include_store: bool = False) -> list[tuple[str, Path]]:
    """(why, path) for every published file that differs from what the store would publish now,
    is missing, or is orphaned (a page under dest that the store no longer produces)."""
    pages = build_pages(store, dataset, _store_path(dest, include_store))
    out = []
    for rel, content in sorted(pages.items()):
        path = dest / rel
        if not path.is_file():
            out.append(("missing", path))
        elif path.read_bytes() != content:
            out.append(("stale", path))
    if dataset is None:
        for rel in sorted(_existing_pages(dest) - set(pages)):
            out.append(("orphaned", dest / rel))
    return out
