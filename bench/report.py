"""Records → markdown leaderboard. Pure functions of the records (and their per-example files):
the same records always give the same text.

One table per dataset × threat model (norm, ε) × evaluation size: a row per model, robust
accuracy per attack, and the worst case per example over those attacks, ranked by it.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

import pandas as pd

from bench.evaluate import worst_case

PerExampleLoader = Callable[[str], pd.DataFrame]


def _pct(v: float) -> str:
    return "—" if v != v else f"{100 * v + 0.0:.1f}".replace("-0.0", "0.0")  # v != v: NaN


def _latest(records: Iterable[dict]) -> list[dict]:
    """One record per model × attack × threat model × n: the newest (e.g. after a config change)."""
    best: dict[tuple, dict] = {}
    for rec in records:
        s = rec["spec"]
        key = (rec["model_id"], s["attack"]["name"], s["budget"]["norm"], float(s["budget"]["eps"]),
               s["dataset"]["name"], int(s["dataset"]["n"]))
        cur = best.get(key)
        if cur is None or (rec["provenance"]["started_at"], rec["record_id"]) > (
                cur["provenance"]["started_at"], cur["record_id"]):
            best[key] = rec
    return list(best.values())


def diagnoses(records: Iterable[dict], load_per_example: PerExampleLoader, probes: Iterable[dict] = ()) -> dict:
    """(model_id, dataset, n) → masking Diagnosis over all of that model's threat models."""
    from bench.masking import diagnose, model_results

    probes = list(probes)
    by_model: dict[tuple, list[dict]] = defaultdict(list)
    for rec in _latest(records):
        by_model[(rec["model_id"], rec["spec"]["dataset"]["name"], int(rec["spec"]["dataset"]["n"]))].append(rec)
    out = {}
    for (model_id, dataset, n), recs in by_model.items():
        arch = recs[0]["spec"]["arch"]
        own = next((p for p in probes if p["model_id"] == model_id and p["n"] == n), None)
        reference = next((p for p in probes if p["label"] == "vanilla" and p["arch"] == arch
                          and p["dataset"] == dataset and p["n"] == n), None)
        out[(model_id, dataset, n)] = diagnose(model_results(recs, load_per_example, own, reference))
    return out


def leaderboard_tables(records: Iterable[dict], load_per_example: PerExampleLoader,
                       probes: Iterable[dict] = ()) -> list[tuple[str, pd.DataFrame]]:
    """Group records into (title, table) pairs, tables ranked by worst-case robust accuracy, each
    row with its apparent robust accuracy and the model's masking verdict."""
    from bench.masking import AttackResult, apparent_and_worst

    records = list(records)
    verdicts = diagnoses(records, load_per_example, probes)
    groups: dict[tuple, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for rec in records:
        s = rec["spec"]
        key = (s["dataset"]["name"], s["budget"]["norm"], float(s["budget"]["eps"]), int(s["dataset"]["n"]))
        current = groups[key][rec["model_id"]].get(s["attack"]["name"])
        # one record per model × attack in a table: the newest wins (e.g. after a config change)
        if current is None or (rec["provenance"]["started_at"], rec["record_id"]) > (
                current["provenance"]["started_at"], current["record_id"]):
            groups[key][rec["model_id"]][s["attack"]["name"]] = rec

    tables = []
    for (dataset, norm, eps, n), by_model in sorted(groups.items()):
        attacks = sorted({a for per_attack in by_model.values() for a in per_attack})
        minimal = sorted({a for per_attack in by_model.values() for a, r in per_attack.items()
                          if r["spec"]["attack"].get("minimal_norm")})
        rows = []
        for model_id, per_attack in by_model.items():
            any_rec = next(iter(per_attack.values()))
            s = any_rec["spec"]
            row = {"defense": s["defense"]["label"], "arch": s["arch"], "model": model_id,
                   "clean": any_rec["metrics"]["clean_acc"]}
            for a in attacks:
                row[a] = per_attack[a]["metrics"]["robust_acc"] if a in per_attack else float("nan")
            for a in minimal:
                # the evidence a minimal-norm attack adds: does it always succeed, and how far must it go
                m = per_attack[a]["metrics"] if a in per_attack else {}
                pert = m.get("perturbation") or {}
                row[f"{a} success (any size)"] = m.get("unbounded_success_rate", float("nan"))
                row[f"{a} median {norm}"] = pert.get("median", float("nan"))
            frames = [load_per_example(r["record_id"]) for r in per_attack.values()]
            row["worst case"], _ = worst_case(frames)
            results = {a: AttackResult(r["metrics"]["robust_acc"],
                                       f.set_index("index")["adv_correct"].astype(bool), r["metrics"])
                       for (a, r), f in zip(per_attack.items(), frames)}
            row["apparent"], _ = apparent_and_worst(results)
            row["apparent − worst"] = row["apparent"] - row["worst case"]
            row["masking"] = verdicts[(model_id, dataset, n)].verdict
            row["attacks run"] = f"{len(per_attack)}/{len(attacks)}"
            row["n"] = n
            rows.append(row)
        df = pd.DataFrame(rows).sort_values(["worst case", "clean", "defense"], ascending=[False, False, True])
        title = f"{dataset} · {norm} ε = {eps:g} · n = {n}"
        tables.append((title, df.reset_index(drop=True)))
    return tables


def security_curves(tables: list[tuple[str, pd.DataFrame]]) -> dict[tuple, pd.DataFrame]:
    """Robust accuracy vs budget, per (dataset, norm, n) swept over more than one ε: rows are
    (defense, model, attack incl. the worst case), columns the budgets. Built from the tables, so a
    curve point is exactly the leaderboard number."""
    points = defaultdict(list)
    for title, df in tables:
        dataset, threat, n_part = title.split(" · ")
        norm, eps = threat.split(" ε = ")
        skip = {"defense", "arch", "model", "clean", "attacks run", "n", "apparent", "apparent − worst", "masking"}
        for _, row in df.iterrows():
            for col in df.columns:
                if col in skip or " success " in col or " median " in col:
                    continue
                points[(dataset, norm, n_part)].append(
                    {"defense": row["defense"], "model": row["model"], "attack": col, "eps": float(eps),
                     "robust_acc": row[col]})
    curves = {}
    for key, rows in points.items():
        frame = pd.DataFrame(rows)
        if frame["eps"].nunique() > 1:
            curves[key] = frame.pivot_table(index=["defense", "model", "attack"], columns="eps", values="robust_acc")
    return curves


def _png(fig) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})  # no version stamp: byte-stable
    plt.close(fig)
    return buf.getvalue()


def _figure(size=(7, 4.5)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def security_curve_png(key: tuple, frame: pd.DataFrame) -> bytes:
    """Robust accuracy vs ε, a line per defense × attack (solid: the worst case)."""
    dataset, norm, n_part = key
    fig, ax = _figure()
    for (defense, _model, attack), row in frame.iterrows():
        ax.plot(row.index, 100 * row.values, "-" if attack == "worst case" else "--", marker="o",
                label=f"{defense} · {attack}")
    ax.set_xlabel(f"{norm} budget ε")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title(f"Security curves · {dataset} · {n_part}")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper right")
    return _png(fig)


def plot_security_curves(curves: dict[tuple, pd.DataFrame], folder) -> list:
    """One PNG per swept threat model, written into `folder`."""
    from pathlib import Path

    written = []
    for key, frame in sorted(curves.items()):
        path = Path(folder) / f"curves-{key[0]}-{key[1]}.png"
        path.write_bytes(security_curve_png(key, frame))
        written.append(path)
    return written


def gradient_histogram_png(probes: dict) -> bytes:
    """Histogram of per-example |∇x CE|₁ (log10; exact zeros counted apart): masking piles up at zero."""
    import numpy as np

    values = np.asarray(probes["ce_grad_l1_per_example"], dtype=float)
    zero = int((values == 0).sum())
    fig, ax = _figure((6, 3.5))
    positive = values[values > 0]
    if len(positive):
        ax.hist(np.log10(positive), bins=30, color="tab:blue")
    ax.set_xlabel("log10 |∇x cross-entropy|₁ per input")
    ax.set_ylabel("inputs")
    ax.set_title(f"{probes['label']} · {zero} of {len(values)} inputs have exactly zero gradient", fontsize=9)
    return _png(fig)


def temperature_sweep(records: Iterable[dict]) -> dict[tuple, pd.DataFrame]:
    """(dataset, defense, n) → per temperature: JSMA success (Papernot 2016's metric) beside C&W's
    unbounded success and median L2 (Carlini & Wagner 2016's rebuttal), for defenses trained at
    several temperatures with otherwise equal configs."""
    rows = defaultdict(list)
    for rec in _latest(records):
        s = rec["spec"]
        cfg = dict(s["defense"]["config"])
        if "temperature" not in cfg:
            continue
        temperature = cfg.pop("temperature")
        key = (s["dataset"]["name"], s["defense"]["name"], int(s["dataset"]["n"]), canonical(cfg))
        m = rec["metrics"]
        entry = {"temperature": temperature}
        if s["attack"]["name"] == "jsma":
            entry["jsma success"] = m["success_rate"]
        elif s["attack"]["name"] == "cw":
            entry["cw success (any size)"] = m["unbounded_success_rate"]
            entry["cw median l2"] = (m.get("perturbation") or {}).get("median", float("nan"))
        elif s["attack"]["name"] == "pgd" and s["budget"]["norm"] == "linf":
            entry[f"pgd linf {s['budget']['eps']:g} robust"] = m["robust_acc"]
        else:
            continue
        rows[key].append(entry)
    out = {}
    for (dataset, defense, n, _), entries in rows.items():
        frame = pd.DataFrame(entries).groupby("temperature").first().sort_index()
        if len(frame) > 1:
            out[(dataset, defense, n)] = frame
    return out


def temperature_png(key: tuple, frame: pd.DataFrame) -> bytes:
    """JSMA success vs T (Papernot 2016) and C&W median L2 vs T (Carlini & Wagner 2016), one figure."""
    dataset, defense, n = key
    fig, ax = _figure((6.5, 4))
    if "jsma success" in frame:
        ax.plot(frame.index, 100 * frame["jsma success"], "o-", color="tab:red", label="JSMA success (%)")
    if "cw success (any size)" in frame:
        ax.plot(frame.index, 100 * frame["cw success (any size)"], "s--", color="tab:green",
                label="C&W success, any size (%)")
    ax.set_xscale("log")
    ax.set_xlabel("distillation temperature T")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-2, 102)
    if "cw median l2" in frame:
        ax2 = ax.twinx()
        ax2.plot(frame.index, frame["cw median l2"], "^:", color="tab:blue", label="C&W median L2")
        ax2.set_ylabel("C&W median L2")
        ax2.legend(loc="lower right", fontsize=7)
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title(f"{defense} on {dataset} (n = {n}): Papernot 2016 vs Carlini & Wagner 2016", fontsize=9)
    return _png(fig)


def canonical(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True)


def probes_table(probes: Iterable[dict]) -> pd.DataFrame:
    """One row per (model, dataset, n): the masking mechanics of each model (bench/probes.py)."""
    rows = [{
        "defense": p["label"], "arch": p["arch"], "dataset": p["dataset"], "model": p["model_id"],
        "clean": _pct(p["clean_acc"]), "zero CE grad": _pct(p["zero_grad_share"]),
        "softmax = 1.0": _pct(p["saturated_share"]), "logit L1 (median)": f"{p['logit_l1_median']:.1f}",
        "top-2 gap (median)": f"{p['top2_gap_median']:.2f}", "sensitivity": f"{p['sensitivity']:.3g}",
        "confidence (correct)": _pct(p["confidence_correct"]), "n": p["n"],
    } for p in probes]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values(["dataset", "defense", "n"]).reset_index(drop=True)


def evidence_markdown(verdicts: dict, labels: dict | None = None) -> list[str]:
    """The numbers behind each fired rule, per flagged model (`labels`: model id → row label)."""
    labels = labels or {}
    lines = []
    for (model_id, dataset, n), diagnosis in sorted(verdicts.items()):
        fired = [f for f in diagnosis.findings if f.fired]
        if not fired:
            continue
        name = f"{labels[model_id]} (`{model_id}`)" if model_id in labels else f"model `{model_id}`"
        lines += [f"### {name} · {dataset} · n = {n}: {diagnosis.verdict}", ""]
        for f in fired:
            numbers = "; ".join(
                f"{k}: " + (", ".join(f"{kk} {_num(vv)}" for kk, vv in v.items()) if isinstance(v, dict) else _num(v))
                for k, v in f.evidence.items())
            lines.append(f"- **{f.rule}** {f.title} ({f.threshold}; {f.source}): {numbers}")
        lines.append("")
    return lines


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def render_markdown(tables: list[tuple[str, pd.DataFrame]], *, heading: str = "distill-bench leaderboard",
                    command: str | None = None, probes: Iterable[dict] = (), verdicts: dict | None = None) -> str:
    """Markdown text: accuracies in %, worst case per example over the attacks in the table."""
    lines = [f"# {heading}", ""]
    if command:
        lines += ["Produced by:", "", "```", command, "```", ""]
    lines += ["Accuracies in % on the first n test examples. Each attack column is the robust accuracy "
              "under that attack; **worst case** counts an example as robust only if every attack in the "
              "table left it correctly classified. `attacks run` below the table width means the worst "
              "case covers fewer attacks for that row.", ""]
    if not tables:
        lines += ["_No records yet._", ""]
    for title, df in tables:
        shown = df.copy()
        for col in shown.columns:
            if " median " in col:
                shown[col] = shown[col].map(lambda v: "—" if v != v else f"{v:.3f}")
            elif col not in ("defense", "arch", "model", "attacks run", "n", "masking"):
                shown[col] = shown[col].map(_pct)
        lines += [f"## {title}", "", shown.to_markdown(index=False, disable_numparse=True), ""]
    for (dataset, norm, n_part), frame in sorted(security_curves(tables).items()):
        shown = frame.map(_pct).reset_index()
        shown.columns = [f"ε = {c:g}" if isinstance(c, float) else c for c in shown.columns]
        lines += [f"## Security curve · {dataset} · {norm} · {n_part}", "",
                  "Robust accuracy as the budget grows: it must fall towards 0 for every attack; a curve that "
                  "stays flat for gradient attacks while others fall is masking.", "",
                  shown.to_markdown(index=False, disable_numparse=True), ""]
    if verdicts:
        labels = {m: d for _, df in tables for d, m in zip(df["defense"], df["model"])}
        evidence = evidence_markdown(verdicts, labels)
        lines += ["## Masking evidence", "",
                  "Rules of bench/masking.py (DESIGN.md §5) that fired, with the numbers that made them fire. "
                  "R1 FGSM beats PGD · R2 black-box beats the strongest white-box attack · R3 unbounded C&W below 99% · R4 noise finds "
                  "what gradients missed · R5 accuracy rises with the budget · R6 cross-entropy far weaker than "
                  "margin · R7 zero gradients / saturated softmax / inflated logits · R8 PGD-CE far above the "
                  "worst case.", ""]
        lines += evidence or ["No rule fired for any model.", ""]
    probe_df = probes_table(probes)
    if len(probe_df):
        lines += ["## Model probes", "",
                  "Share of inputs whose cross-entropy input gradient is exactly zero, share whose top softmax "
                  "probability is exactly 1.0 in float32, logit size, and sensitivity mean |∂Σ logits/∂x| "
                  "(bench/probes.py). Large logits with zero gradients are how defensive distillation masks.", "",
                  probe_df.to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(lines)
