"""Board → JSON and CSV for programs. The JSON document follows docs/schema/leaderboard.schema.json
(`schema_version` bumps on any incompatible change); CSV is one line per row per table. No
timestamps or host names: the same store gives the same bytes."""
from __future__ import annotations

import csv
import io
import json
import math

from bench.report.binarization import binarization_json
from bench.report.indicators import indicators_json
from bench.report.board import Board, Row, Table
from bench.report.cards import card_of
from bench.report.tables import portable

LEADERBOARD_SCHEMA = "distill-bench/leaderboard"
LEADERBOARD_SCHEMA_VERSION = 5  # 2: rows carry the certified lower bound; 3: models carry card, training_curves; 4: binarization; 5: indicators


def _clean(obj):
    """JSON-safe: NaN → null, numpy scalars → Python, floats rounded to 6 digits."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else round(obj, 6)
    return obj


def _row(row: Row) -> dict:
    return {
        "rank": row.rank, "tied_with_above": row.tied_with_above, "group": row.group, "ranked": row.ranked,
        "label": row.label,
        "comparisons": [{"with": other, "only_this": a, "only_other": b, "p": float(f"{p:.3g}"), "separated": sep}
                        for other, a, b, p, sep in row.comparisons],
        "defense": row.defense, "arch": row.arch, "model_ids": row.model_ids, "seeds": row.seeds,
        "config_changes": row.changes, "n": row.n_examples, "clean": row.clean.to_json(),
        "robust": row.robust.to_json(), "robust_is_upper_bound": not row.ranked,
        "autoattack": row.autoattack.to_json() if row.autoattack else None,
        "claimed": row.claimed.to_json() if row.claimed else None,
        "attacks": {k: c.to_json() for k, c in row.attacks.items()},
        "verdict": row.verdict, "rules_fired": row.fired, "rules_fired_elsewhere": row.fired_elsewhere, "rules_evaluated": row.evaluated, "reasons": row.reasons,
        "adapted": row.adapted, "robust_before_adaptation": row.robust_before.to_json() if row.robust_before else None,
        "adaptive_attacks": row.adaptive_attacks,
        "certified": row.certified.to_json() if row.certified else None, "not_certifiable": row.not_certifiable,
    }


def _table(table: Table) -> dict:
    return {"norm": table.norm, "eps": table.eps, "rows": [_row(r) for r in table.rows]}


def board_json(board: Board) -> dict:
    models = {}
    for model_id, m in sorted(board.assessments.items()):
        p = m.probes
        models[model_id] = {
            "label": board.labels.get(model_id, model_id), "defense": m.info.defense, "config": dict(m.info.config),
            "arch": m.info.arch, "dataset": m.info.dataset, "seed": m.info.seed, "upstream": dict(m.info.upstream),
            "verdict": m.diagnosis.verdict,
            "findings": [{"rule": f.rule, "title": f.title, "fired": f.fired, "evaluated": f.evaluated,
                          "threshold": f.threshold, "source": f.source, "evidence": f.evidence}
                         for f in m.diagnosis.findings],
            "strength": [{"rule": f.rule, "title": f.title, "fired": f.fired, "evaluated": f.evaluated,
                          "threshold": f.threshold, "source": f.source, "evidence": f.evidence}
                         for f in m.diagnosis.strength],
            "reference_model_id": m.reference.model_id if m.reference else None,
            "probes": None if p is None else {k: v for k, v in p.raw.items() if k not in ("ce_grad_l1_per_example", "integrity")},
            "records": sorted(r.record_id for t in m.threats.values() for a in t.attacks.values() for r in a.records),
            "card": card.to_json() if (card := card_of(m.info.defense)) is not None else None,
            "training_curves": [dict(c) for c in m.info.training_curves],
            "binarization": binarization_json(m),
            "indicators": indicators_json(m),
        }
    return _clean({
        "schema": LEADERBOARD_SCHEMA, "schema_version": LEADERBOARD_SCHEMA_VERSION,
        "pages": [{"dataset": page.dataset, "norm": page.norm, "header": page.header, "commands": [portable(c) for c in page.commands],
                   "tables": [_table(t) for t in page.tables]} for page in board.pages],
        "models": models,
    })


def board_json_text(board: Board) -> str:
    return json.dumps(board_json(board), indent=2, sort_keys=True, allow_nan=False) + "\n"


CSV_COLUMNS = ["dataset", "norm", "eps", "rank", "group", "tied_with_above", "label", "defense", "arch", "model_ids", "seeds",
               "n", "clean", "clean_low", "clean_high", "robust", "robust_low", "robust_high", "robust_is_upper_bound",
               "autoattack", "autoattack_low", "autoattack_high", "claimed", "claimed_low", "claimed_high",
               "claimed_attack", "verdict", "reasons"]


def board_csv(board: Board) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    r6 = lambda v: "" if v is None or v != v else f"{v:.6g}"
    for page in board.pages:
        for table in page.tables:
            for row in table.rows:
                cells = []
                for cell in (row.clean, row.robust):
                    cells += [r6(cell.value), r6(cell.low), r6(cell.high)]
                aa = row.autoattack
                cl = row.claimed
                writer.writerow([
                    table.dataset, table.norm, f"{table.eps:g}", row.rank or "", row.group, int(row.tied_with_above), row.label,
                    row.defense, row.arch, " ".join(row.model_ids), " ".join(map(str, row.seeds)), row.n_examples,
                    *cells[:3], *cells[3:], int(not row.ranked),
                    *(["", "", ""] if aa is None else [r6(aa.value), r6(aa.low), r6(aa.high)]),
                    *(["", "", "", ""] if cl is None else [r6(cl.value), r6(cl.low), r6(cl.high), cl.attack]),
                    row.verdict, "; ".join(row.reasons),
                ])
    return buf.getvalue()
