"""Board → markdown: leaderboard pages, the details and evidence sections, model pages.

Pure functions of typed data (bench/report/board.py, bench/assess/assessment.py): the same store renders the same
bytes. The ranking rules, intervals and table layout are explained in docs/leaderboard.md; the
masking rules in docs/masking.md.
"""
from __future__ import annotations

import json
from typing import Sequence

from bench.assess.assessment import ModelAssessment
from bench.report.binarization import binarization_markdown
from bench.report.indicators import indicators_markdown
from bench.report.curves import budget_text, security_curves
from bench.report.tables import inline, md_table, portable  # md_table also imported from here by publish.py
from bench.report.board import Board, Cell, Page, Row, Table
from bench.assess.masking import RULE_SUMMARY

DOCS = "docs/leaderboard.md"  # in the distill-bench repository
MASKING_DOCS = "docs/masking.md"
CERTIFIED_DOCS = "docs/certified.md"


def pct(v: float) -> str:
    return "—" if v != v else f"{100 * v + 0.0:.1f}".replace("-0.0", "0.0")


def fmt_cell(cell: Cell | None, upper: bool = False) -> str:
    """'54.0 [44.3, 63.4]' (95% Wilson); '≤ ' for an upper bound; '±sd (k seeds)' for several seeds."""
    if cell is None:
        return "—"
    text = f"{'≤ ' if upper else ''}{pct(cell.value)} [{pct(cell.low)}, {pct(cell.high)}]"
    if cell.seeds > 1:
        text += f" ±{100 * cell.spread:.1f} ({cell.seeds} seeds)"
    return text


def _defense_cell(row: Row, link: bool) -> str:
    if link and len(row.model_ids) == 1:
        return f"[{inline(row.label)}](models/{row.model_ids[0]}.md)"
    if link:
        return f"{inline(row.label)} (" + ", ".join(f"[seed {s}](models/{m}.md)" for s, m in zip(row.seeds, row.model_ids)) + ")"
    return row.label


def _certified_cell(row: Row) -> str:
    if row.not_certifiable:
        return "n/c"
    return fmt_cell(row.certified) if row.certified is not None else "—"


def _claimed_header(table: Table) -> str:
    attacks = {r.claimed.attack for r in table.rows if r.claimed is not None}
    return f"claimed ({attacks.pop()})" if len(attacks) == 1 else "claimed"


def _claimed_cell(cell: Cell | None, uniform: bool) -> str:
    if cell is None:
        return "—"
    return fmt_cell(cell) if uniform else f"{fmt_cell(cell)} {cell.attack}"


def table_markdown(table: Table, link: bool) -> list[str]:
    lines: list[str] = []
    claimed_header = _claimed_header(table)
    uniform = claimed_header != "claimed"
    # n goes in the page header when every row shares it; otherwise each row shows its own
    sizes = {r.n_examples for r in table.rows}
    n_col = [["n"], "r", lambda r: [str(r.n_examples)]] if len(sizes) > 1 else [[], "", lambda r: []]
    # the certified lower bound beside the empirical upper bound, where a certifier ran on some row
    c_col = ([["certified"], "r", lambda r: [_certified_cell(r)]] if any(r.certified for r in table.rows)
             else [[], "", lambda r: []])
    if table.ranked:
        rows = [[f"{r.rank} {r.group}".strip(), _defense_cell(r, link), *n_col[2](r), fmt_cell(r.clean),
                 *c_col[2](r), fmt_cell(r.robust), fmt_cell(r.autoattack), _claimed_cell(r.claimed, uniform),
                 r.verdict_cell] for r in table.ranked]
        lines += md_table(["rank", "defense", *n_col[0], "clean", *c_col[0], "robust (worst case)", "AutoAttack",
                           claimed_header, "verdict"], "rl" + n_col[1] + "r" + c_col[1] + "rrrl", rows)
        if len(table.ranked) > 1:
            lines += ["", "Rows that share a letter cannot be told apart: exact McNemar test on their per-example worst "
                      "case, on the same examples, Holm-corrected over the table's comparisons (docs/leaderboard.md)."]
    else:
        lines += ["_No row meets the ranking conditions at this budget (see below)._"]
    if table.unranked:
        lines += ["", f"**Not ranked** — robust accuracy is an upper bound (≤): the evaluation is incomplete, the "
                      "model is at chance, or its masking is not resolved.", ""]
        rows = [[_defense_cell(r, link), *n_col[2](r), fmt_cell(r.clean), *c_col[2](r), fmt_cell(r.robust, upper=True),
                 fmt_cell(r.autoattack), _claimed_cell(r.claimed, uniform), r.verdict_cell, "; ".join(r.reasons)]
                for r in table.unranked]
        lines += md_table(["defense", *n_col[0], "clean", *c_col[0], "robust (worst case)", "AutoAttack", claimed_header,
                           "verdict", "why not ranked"], "l" + n_col[1] + "r" + c_col[1] + "rrrll", rows)
    if c_col[0]:
        lines += ["", f"certified: the share of examples no input in the ball can misclassify (a sound lower bound: "
                      f"certified ≤ true ≤ robust; {CERTIFIED_DOCS}); n/c: the model has a part the bounds cannot "
                      f"follow (its page says which); —: no certifier ran."]
    return lines


def details_markdown(table: Table) -> list[str]:
    """Robust accuracy per attack, every row of the table (ranked first)."""
    rows = [[r.label] + [pct(r.attacks[k].value) if k in r.attacks else "—" for k in table.attack_keys]
            + [pct(r.robust.value), str(r.robust.n)] for r in table.rows]
    return md_table(["defense", *table.attack_keys, "worst case", "n"], "l" + "r" * (len(table.attack_keys) + 2), rows)


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _evidence_text(evidence: dict) -> str:
    parts = []
    for key, value in evidence.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {_num(v)}" if not isinstance(v, dict) else f"{k} {json.dumps(v, sort_keys=True)}"
                              for k, v in value.items())
            parts.append(f"{key}: {inner}")
        else:
            parts.append(f"{key}: {_num(value)}")
    return "; ".join(parts)


def evidence_markdown(assessment: ModelAssessment, label: str) -> list[str]:
    d = assessment.diagnosis
    fired = [f for f in d.findings if f.fired]
    if not fired:
        return []
    lines = [f"### {inline(label)} (`{assessment.model_id}`): {d.verdict}", ""]
    for f in fired:
        lines.append(f"- **{f.rule}** {f.title} ({f.threshold}; {f.source}): {_evidence_text(f.evidence)}")
    return lines + [""]


def probes_markdown(assessments: Sequence[ModelAssessment], labels: dict[str, str]) -> list[str]:
    rows = []
    for m in sorted(assessments, key=lambda m: labels.get(m.model_id, m.model_id)):
        p = m.probes
        if p is None:
            continue
        rows.append([labels.get(m.model_id, m.model_id), pct(p.zero_grad_share), pct(p.saturated_share),
                     f"{p.logit_l1_median:.1f}", f"{p.top2_gap_median:.2f}", f"{p.sensitivity:.3g}",
                     "—" if p.loss_instability is None else f"{p.loss_instability:.3f}", str(p.n)])
    if not rows:
        return []
    return md_table(["defense", "zero CE grad", "softmax = 1.0", "logit L1 (median)", "top-2 gap (median)",
                     "sensitivity", "loss instability", "n"], "lrrrrrrr", rows)


NORM_NAMES = {"linf": "L∞", "l2": "L2", "l0": "L0"}


def page_markdown(page: Page, *, link: bool = True, curve_png: str | None = None, level: int = 1) -> str:
    h = "#" * level
    norm = NORM_NAMES.get(page.norm, page.norm)
    lines = [f"{h} {page.dataset} · {norm} leaderboard", ""]
    shared = ", ".join(f"{k} = {v}" if k == "n" else (f"architecture {v}" if k == "arch" else f"{k}={v}")
                       for k, v in page.header.items())
    lines += [f"Every row: {page.dataset} test split (first examples){', ' + shared if shared else ''}. "
              "Accuracies in % with 95% Wilson intervals [low, high]. **robust** is the per-example worst case "
              "over every attack the store holds for the model and budget. **claimed** is what the defense's own "
              "evaluation reports (PGD on cross-entropy; softmax JSMA at L0). A row is ranked only with its threat "
              "model's minimum suite, clean accuracy above chance and no unresolved masking verdict "
              f"({DOCS}; rules: {MASKING_DOCS}).", ""]
    if page.commands:
        lines += ["Produced by:", "", "```", *[portable(c) for c in page.commands], "```", ""]
    for table in page.tables:
        lines += [f"{h}# {norm} ε = {budget_text(page.norm, table.eps, page.dataset)}", ""] + table_markdown(table, link) + [""]
    curves = security_curves(page)
    if curves:
        lines += [f"{h}# Security curve", "",
                  "Robust accuracy as the budget grows: it must fall towards 0 for every attack; a curve that stays "
                  "flat for gradient attacks while others fall is masking. A worst case marked ≤ is an upper bound "
                  "(its row is not ranked at that budget; the figure draws it hollow); the band is its 95% interval.",
                  ""]
        eps = [t.eps for t in page.tables]
        def shown(name, point):
            value, upper = point
            return ("≤ " if upper and name.endswith("worst case") else "") + pct(value)

        rows = [[name] + [shown(name, points[e]) if e in points else "—" for e in eps]
                for name, points in sorted(curves.items())]
        lines += md_table(["row · attack", *[f"ε = {budget_text(page.norm, e, page.dataset)}" for e in eps]],
                          "l" + "r" * len(eps), rows) + [""]
        if curve_png:
            lines += [f"![security curves]({curve_png})", ""]
    lines += [f"{h}# Details: robust accuracy per attack", ""]
    for table in page.tables:
        lines += [f"{norm} ε = {budget_text(page.norm, table.eps, page.dataset)}:", ""] + details_markdown(table) + [""]
    lines += [f"{h}# Masking evidence", "",
              "Rules that fired, with the numbers that made them fire (" + MASKING_DOCS + "). "
              + " · ".join(f"{k} {v}" for k, v in RULE_SUMMARY.items()) + ".", ""]
    evidence = []
    for model_id, m in sorted(page.assessments.items(), key=lambda kv: page.labels.get(kv[0], kv[0])):
        evidence += evidence_markdown(m, page.labels.get(model_id, model_id))
    lines += evidence or ["No rule fired for any model.", ""]
    probes = probes_markdown(list(page.assessments.values()), page.labels)
    if probes:
        lines += [f"{h}# Model probes", "",
                  "Share of inputs whose cross-entropy input gradient is exactly zero, share whose top softmax "
                  "probability is exactly 1.0 in float32, logit size, and sensitivity mean |∂Σ logits/∂x| "
                  "(bench/execute/probes.py). Large logits with zero gradients are how defensive distillation masks. "
                  "Loss instability: the mean relative change of the cross-entropy a few 1/255 from the input "
                  "(Pintor et al. 2022; above 0.5 it is finding W6, docs/masking.md).", ""]
        lines += probes + [""]
    if link:
        lines += [f"{h}# Model pages", ""]
        counts = {}
        for mid in page.assessments:
            counts[page.labels[mid]] = counts.get(page.labels[mid], 0) + 1
        for mid in sorted(page.assessments, key=lambda mid: (page.labels[mid], page.assessments[mid].info.seed)):
            seed = f" · seed {page.assessments[mid].info.seed}" if counts[page.labels[mid]] > 1 else ""
            lines.append(f"- [{page.labels[mid]}{seed}](models/{mid}.md) `{mid}`")
        lines.append("")
    return "\n".join(lines)


def board_markdown(board: Board, *, heading: str = "distill-bench leaderboard", command: str | None = None) -> str:
    """Every page of the board as one markdown text (bench run, bench leaderboard)."""
    lines = [f"# {heading}", ""]
    if command and not any(page.commands for page in board.pages):
        lines += ["Produced by:", "", "```", portable(command), "```", ""]
    if not board.pages:
        lines += ["_No records yet._", ""]
    text = "\n".join(lines)
    for page in board.pages:
        text += "\n" + page_markdown(page, link=False, level=2)
    return text


def model_markdown(m: ModelAssessment, label: str, *, commands: Sequence[str] = (), histogram: str | None = None,
                   curve_png: str | None = None) -> str:
    from bench.report.cards import card_markdown, card_of, curve_markdown

    info = m.info
    lines = [f"# {inline(label)} · {info.arch} · {info.dataset}", "",
             f"Model `{m.model_id}`; defense `{info.defense}`, seed {info.seed}, config:", "",
             "```json", json.dumps(dict(info.config), indent=2, sort_keys=True), "```", ""]
    if info.upstream:
        lines += ["Upstream models: " + ", ".join(f"{role} `{mid}`" for role, mid in sorted(info.upstream.items())), ""]
    lines += card_markdown(card_of(info.defense))
    lines += curve_markdown(info.training_curves, curve_png)
    d = m.diagnosis
    lines += [f"## Masking diagnosis: {d.verdict}", "",
              "The verdict belongs to the model: evidence from every threat model and evaluation slice "
              f"counts ({MASKING_DOCS}).", ""]
    rows = []
    for f in d.findings:
        fired = "yes" if f.fired else ("no" if f.evaluated else "not evaluated")
        rows.append([f.rule, f.title, fired, f.threshold, _evidence_text(f.evidence) if f.evidence else "", f.source])
    lines += md_table(["rule", "finding", "fired", "threshold", "evidence", "source"], "llllll", rows) + [""]
    strength = [f for f in d.strength if f.evaluated]
    if strength:
        lines += ["## Attack strength on this model", "",
                  "Not masking: evidence that an attack of the suite is weak on this model; each finding that fires "
                  f"prescribes stronger attacks, run by the adaptive stage ({MASKING_DOCS}).", ""]
        lines += md_table(["finding", "what", "fired", "threshold", "evidence", "source"], "llllll",
                          [[f.rule, f.title, "yes" if f.fired else "no", f.threshold,
                            _evidence_text(f.evidence) if f.evidence else "", f.source] for f in strength]) + [""]
    lines += indicators_markdown(m)
    lines += binarization_markdown(m)
    if m.reference is not None:
        lines += [f"Undefended reference (rule R7): `{m.reference.model_id}` (vanilla, same dataset, architecture, "
                  "seed and epochs).", ""]
    for (norm, eps), t in m.threats.items():
        name = f"{NORM_NAMES.get(norm, norm)} ε = {eps:g}"
        blockers = m.rank_blockers((norm, eps))
        status = "ranked" if not blockers else "not ranked: " + "; ".join(blockers)
        lines += [f"## {name}", "", f"On {t.clean.n} examples: clean {fmt_cell(Cell.of([t.clean]))}, robust (worst "
                  f"case over every record) {fmt_cell(Cell.of([t.worst]), upper=bool(blockers))}; {status}.", ""]
        if t.certificate is not None:
            c = t.certificate
            said = (f"not certifiable: {'; '.join(c.not_certifiable)}" if c.not_certifiable else
                    f"{fmt_cell(Cell.of([c.accuracy]))} ({', '.join(c.methods)}; records "
                    + ", ".join(f"`{r.record_id}`" for r in c.records) + ")")
            lines += [f"Certified (a sound lower bound, {CERTIFIED_DOCS}): {said}.", ""]
        rows = []
        for key, a in t.attacks.items():
            for r in a.records:
                med = r.metrics.perturbation_median
                rows.append([key, r.attack.config_summary, f"{r.attack.library} {r.attack.library_version}",
                             str(r.n), pct(r.metrics.robust_acc), pct(r.metrics.unbounded_success_rate),
                             "—" if med is None else f"{med:.4g}", f"`{r.record_id}`"])
            rows.append([f"**{key}** (merged)", "", "", str(a.accuracy.n), f"**{pct(a.accuracy.value)}**", "", "", ""])
        lines += md_table(["attack", "config", "library", "n", "robust", "success (any size)", "median perturbation",
                           "record"], "lllrrrrl", rows) + [""]
    notes = sorted({note for t in m.threats.values() for a in t.attacks.values() for r in a.records for note in r.notes})
    if notes:
        lines += ["## What the attacks reported", ""] + [f"- {inline(n)}" for n in notes] + [""]
    if m.probes is not None:
        keep = {k: v for k, v in m.probes.raw.items() if k != "ce_grad_l1_per_example"}
        lines += [f"## Probes (n = {m.probes.n})", "", "```json", json.dumps(keep, indent=2, sort_keys=True), "```", ""]
        if histogram:
            lines += [f"![input-gradient histogram]({histogram})", ""]
    if commands:
        lines += ["## Produced by", "", "```", *[portable(c) for c in commands], "```", ""]
    return "\n".join(lines)
