"""`bench leaderboard publish`: the store's records → pages under leaderboard/.

- `<dataset>-<norm>.md`: one page per dataset × threat model, every budget of that norm, ranked
  by worst-case robust accuracy, with verdicts, security curves, the masking evidence and the
  commands that produced the records;
- `models/<model_id>.md` (+ PNGs): a page per model with its spec, every rule's finding, its
  probes, its results per attack, and its input-gradient histogram;
- `<dataset>-temperature.png`: JSMA and C&W against the distillation temperature, when swept.

Pages are pure functions of the records: the same store publishes byte-identical files, and
`--check` says which published files are stale.
"""
from __future__ import annotations

import functools
import json
from collections import defaultdict
from pathlib import Path

from bench.report import (
    _latest, _pct, diagnoses, gradient_histogram_png, leaderboard_tables, render_markdown, security_curve_png,
    security_curves, temperature_png, temperature_sweep,
)
from bench.store import Store


def _rounded(value):
    """Evidence numbers to 4 significant digits: readable, and still the numbers that decided."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return float(f"{value:.4g}") if isinstance(value, float) else value


def _commands(records) -> list[str]:
    return sorted({r["provenance"].get("command") for r in records if r["provenance"].get("command")})


def build_pages(store: Store, dataset: str | None = None) -> dict[str, bytes]:
    """Relative path → file content of every published file."""
    records = _latest(store.records(dataset=dataset) if dataset else store.records())
    probes = [p for p in store.all_probes() if not dataset or p["dataset"] == dataset]
    load = functools.lru_cache(maxsize=None)(store.load_per_example)
    verdicts = diagnoses(records, load, probes)
    pages: dict[str, bytes] = {}

    by_page = defaultdict(list)
    for rec in records:
        by_page[(rec["spec"]["dataset"]["name"], rec["spec"]["budget"]["norm"])].append(rec)
    index = ["# distill-bench published leaderboards", "",
             "Produced by `bench leaderboard publish` from the records of the store; every number can be "
             "re-derived by re-running the command on its page.", ""]
    for (ds, norm), recs in sorted(by_page.items()):
        tables = leaderboard_tables(recs, load, probes)
        model_ids = {r["model_id"] for r in recs}
        page_verdicts = {k: v for k, v in verdicts.items() if k[0] in model_ids and k[1] == ds}
        page_probes = [p for p in probes if p["model_id"] in model_ids and p["dataset"] == ds]
        commands = _commands(recs)
        text = render_markdown(tables, heading=f"{ds} · {norm} leaderboard", probes=page_probes,
                               verdicts=page_verdicts, command="\n".join(commands) or None)
        for key, frame in security_curves(tables).items():
            name = f"curves-{key[0]}-{key[1]}.png"
            pages[name] = security_curve_png(key, frame)
            text += f"\n![security curves]({name})\n"
        links = sorted({(r["spec"]["defense"]["label"], r["model_id"]) for r in recs})
        text += "\n## Model pages\n\n" + "\n".join(f"- [{label}](models/{mid}.md)" for label, mid in links) + "\n"
        pages[f"{ds}-{norm}.md"] = text.encode()
        index.append(f"- [{ds} · {norm}]({ds}-{norm}.md): {len(model_ids)} models, "
                     f"{len({r['spec']['attack']['name'] for r in recs})} attacks")

    for key, frame in temperature_sweep(records).items():
        ds, defense, n = key
        name = f"{ds}-{defense}-temperature"
        pages[f"{name}.png"] = temperature_png(key, frame)
        shown = frame.copy()
        for col in shown.columns:
            shown[col] = shown[col].map(lambda v: f"{v:.3f}") if "median" in col else shown[col].map(_pct)
        pages[f"{name}.md"] = (f"# {defense} on {ds}: temperature sweep (n = {n})\n\n"
                               "Papernot et al. 2016 measured JSMA's success falling as T grows; Carlini & Wagner "
                               "2016 showed C&W still succeeds on every input. Both, from the same models:\n\n"
                               + shown.reset_index().to_markdown(index=False, disable_numparse=True)
                               + f"\n\n![temperature sweep]({name}.png)\n").encode()
        index.append(f"- [{defense} temperature sweep on {ds}]({name}.md)")

    by_model = defaultdict(list)
    for rec in records:
        by_model[rec["model_id"]].append(rec)
    for model_id, recs in sorted(by_model.items()):
        pages.update(_model_page(store, model_id, recs, verdicts, probes))
    pages["README.md"] = ("\n".join(index) + "\n").encode()
    return pages


def _model_page(store: Store, model_id: str, recs: list[dict], verdicts: dict, probes: list[dict]) -> dict[str, bytes]:
    spec = store.model_spec(model_id) if store.has_model(model_id) else {}
    first = recs[0]["spec"]
    lines = [f"# {first['defense']['label']} · {first['arch']} · {first['dataset']['name']}", "",
             f"Model `{model_id}`; defense `{first['defense']['name']}`, config:", "",
             "```json", json.dumps(first["defense"]["config"], indent=2, sort_keys=True), "```", ""]
    if spec.get("upstream_detail"):
        lines += ["Upstream models: " + ", ".join(f"{role} = {u['label']} (`{u['model_id']}`)"
                                                  for role, u in sorted(spec["upstream_detail"].items())), ""]
    files: dict[str, bytes] = {}
    for (mid, ds, n), diagnosis in sorted(verdicts.items()):
        if mid != model_id:
            continue
        lines += [f"## Masking diagnosis on {ds} (n = {n}): {diagnosis.verdict}", "",
                  "| rule | finding | fired | threshold | evidence | source |", "|---|---|---|---|---|---|"]
        for f in diagnosis.findings:
            fired = "yes" if f.fired else ("no" if f.evaluated else "not evaluated")
            evidence = json.dumps(_rounded(f.evidence), sort_keys=True).replace("|", "/") if f.evidence else ""
            lines.append(f"| {f.rule} | {f.title} | {fired} | {f.threshold} | {evidence} | {f.source} |")
        lines.append("")
    lines += ["## Results per attack", "", "| threat model | attack | clean | robust | success | success (any size) | "
              "median perturbation | n |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(recs, key=lambda r: (r["spec"]["budget"]["norm"], r["spec"]["budget"]["eps"], r["spec"]["attack"]["name"])):
        m, b = r["metrics"], r["spec"]["budget"]
        median = (m.get("perturbation") or {}).get("median", float("nan"))
        lines.append(f"| {b['norm']} ε = {b['eps']:g} | {r['spec']['attack']['name']} | {_pct(m['clean_acc'])} | "
                     f"{_pct(m['robust_acc'])} | {_pct(m['success_rate'])} | "
                     f"{_pct(m.get('unbounded_success_rate', float('nan')))} | "
                     f"{'—' if median != median else f'{median:.4g}'} | {m['n']} |")
    lines.append("")
    notes = sorted({note for r in recs for note in r.get("attack_notes", [])})
    if notes:
        lines += ["## What the attacks reported", ""] + [f"- {n}" for n in notes] + [""]
    for p in probes:
        if p["model_id"] != model_id:
            continue
        keep = {k: v for k, v in p.items() if k not in ("ce_grad_l1_per_example",)}
        name = f"models/{model_id}-gradients-n{p['n']}.png"
        files[name] = gradient_histogram_png(p)
        lines += [f"## Probes (n = {p['n']})", "", "```json", json.dumps(keep, indent=2, sort_keys=True), "```", "",
                  f"![input-gradient histogram]({Path(name).name})", ""]
    commands = _commands(recs)
    if commands:
        lines += ["## Produced by", "", "```", *commands, "```", ""]
    files[f"models/{model_id}.md"] = "\n".join(lines).encode()
    return files


def publish(store: Store, dest: Path, dataset: str | None = None) -> list[Path]:
    """Write the pages; return the files whose content changed."""
    changed = []
    for rel, content in build_pages(store, dataset).items():
        path = dest / rel
        if path.is_file() and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(content)
        tmp.replace(path)
        changed.append(path)
    return changed


def stale(store: Store, dest: Path, dataset: str | None = None) -> list[Path]:
    """Published files that differ from what the store would publish now (missing ones included)."""
    return [dest / rel for rel, content in build_pages(store, dataset).items()
            if not (dest / rel).is_file() or (dest / rel).read_bytes() != content]
