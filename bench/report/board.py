"""Assessments → the leaderboard as typed data: pages (dataset × norm), tables (one per budget),
rows (one per configuration; several seeds make one row), ranked or not, with the reasons.

Every renderer (bench/report/) is a pure function of a `Board`. The ranking rules are documented
in docs/leaderboard.md:
- a row is ranked only if, for every seed, the threat model's minimum suite was run, clean accuracy
  is clearly above chance, and the model's verdict is not an unresolved "masking suspected";
- every row of a table is evaluated on the same examples: a row on other or fewer examples than the
  table's largest evaluation set is not ranked ("evaluated on n of N");
- ranked rows are ordered by robust accuracy (the per-example worst case), then clean accuracy, and
  compared pairwise with an exact McNemar test on their per-example worst-case outcomes,
  Holm-corrected over the table's comparisons; rows the test cannot separate share a letter
  (a compact letter display), rows it separates never do;
- every other row is "not ranked": its robust accuracy is an upper bound (≤ X), with the reasons.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from bench.assess.assessment import ModelAssessment, pooled, seed_spread
from bench.assess.evidence import AttackSummary
from bench.assess.masking import verdict_cell, verdict_text
from bench.assess.stats import Accuracy, holm, letter_groups, mcnemar_exact


@dataclass(frozen=True)
class Cell:
    """An accuracy over one or more seeds: mean value, pooled 95% Wilson interval, spread over seeds."""

    value: float
    low: float
    high: float
    spread: float
    seeds: int
    correct: int
    n: int
    attack: str | None = None  # which attack produced it (claimed, AutoAttack)

    @classmethod
    def of(cls, accuracies: list[Accuracy], attack: str | None = None) -> "Cell":
        total = pooled(accuracies)
        low, high = total.interval
        mean = sum(a.value for a in accuracies) / len(accuracies)
        return cls(mean, low, high, seed_spread(accuracies), len(accuracies), total.correct, total.n, attack)

    def to_json(self) -> dict:
        r = lambda v: None if v != v else round(float(v), 6)
        out = {"value": r(self.value), "low": r(self.low), "high": r(self.high), "correct": self.correct,
               "n": self.n, "seeds": self.seeds, "spread": r(self.spread)}
        if self.attack is not None:
            out["attack"] = self.attack
        return out


@dataclass
class Row:
    label: str
    defense: str
    arch: str
    model_ids: list[str]
    seeds: list[int]
    changes: dict[str, str]  # non-default config fields (all of them, before the page header takes shared ones)
    clean: Cell
    robust: Cell  # per-example worst case over every record
    autoattack: Cell | None
    claimed: Cell | None
    attacks: dict[str, Cell]  # every attack run at this budget (details)
    verdict: str
    verdict_cell: str  # the same verdict, for a table cell
    fired: list[str]
    evaluated: list[str]
    reasons: list[str]  # empty: ranked
    rank: int | None = None
    tied_with_above: bool = False  # shares a letter with the ranked row above (cannot be told apart)
    group: str = ""  # letters: ranked rows sharing one cannot be separated by the paired test
    n_examples: int = 0  # examples per seed (the evaluation set)
    adapted: bool = False  # masking flagged, and every adaptive attack it calls for has run
    fired_elsewhere: dict = field(default_factory=dict)  # norm → rules that fired there only (not this row's verdict)
    robust_before: Cell | None = None  # the worst case before the adaptive stage's records
    adaptive_attacks: list[str] = field(default_factory=list)  # attacks the adaptive stage added
    certified: Cell | None = None  # the certified lower bound (certified ≤ true ≤ robust), when certifiers ran
    not_certifiable: list[str] = field(default_factory=list)  # why the certifiers could not bound the model
    survived: list = field(default_factory=list, repr=False, compare=False)  # per seed: bool per example (worst case)
    comparisons: list = field(default_factory=list, repr=False)  # (other label, only-this, only-other, p, separated)

    @property
    def ranked(self) -> bool:
        return not self.reasons


@dataclass
class Table:
    dataset: str
    norm: str
    eps: float
    ranked: list[Row]
    unranked: list[Row]
    attack_keys: list[str]

    @property
    def rows(self) -> list[Row]:
        return self.ranked + self.unranked


@dataclass
class Page:
    dataset: str
    norm: str
    tables: list[Table]
    header: dict[str, str]  # what every row shares: n, architecture, config fields
    assessments: dict[str, ModelAssessment] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # model id → row label
    commands: list[str] = field(default_factory=list)


@dataclass
class Board:
    pages: list[Page]
    assessments: dict[str, ModelAssessment]
    labels: dict[str, str]  # model id → its row label (unique on its pages)


def _label(defense: str, changes: dict[str, str]) -> str:
    return f"{defense} ({', '.join(f'{k}={v}' for k, v in changes.items())})" if changes else defense


def _page_labels(groups: dict[tuple, list[ModelAssessment]]) -> tuple[dict[tuple, str], dict[str, str]]:
    """A unique label per configuration group; the fields every group shares go to the header."""
    changes = {key: members[0].changes for key, members in groups.items()}
    shared_items = set.intersection(*(set(c.items()) for c in changes.values())) if changes else set()
    archs = {members[0].info.arch for members in groups.values()}
    header = {k: v for k, v in sorted(shared_items)}
    if len(archs) == 1:
        header = {"arch": next(iter(archs)), **header}
    labels = {}
    for key, members in groups.items():
        own = {k: v for k, v in changes[key].items() if (k, v) not in shared_items}
        if len(archs) > 1:
            own = {"arch": members[0].info.arch, **own}
        labels[key] = _label(members[0].info.defense, own)
    seen = defaultdict(list)
    for key, label in labels.items():
        seen[label].append(key)
    for label, keys in seen.items():
        if len(keys) > 1:  # same defense and visible config, different hidden spec: name the model
            for key in keys:
                labels[key] = f"{label} [{groups[key][0].model_id[:8]}]"
    return labels, header


def _row(label: str, members: list[ModelAssessment], threat: tuple[str, float]) -> Row:
    threats = [m.threats[threat] for m in members]
    first = members[0]
    aa = [t.autoattack for t in threats]
    claimed = [t.claimed for t in threats]

    def cell(summaries: list[AttackSummary | None]) -> Cell | None:
        if any(s is None for s in summaries):
            return None
        keys = sorted({s.key for s in summaries})
        return Cell.of([s.accuracy for s in summaries], ", ".join(keys))

    keys = sorted(set.intersection(*(set(t.attacks) for t in threats)))
    reasons: list[str] = []
    for m in members:
        for reason in m.rank_blockers(threat):
            tagged = reason if len(members) == 1 else f"seed {m.info.seed}: {reason}"
            if tagged not in reasons:
                reasons.append(tagged)
    fired = sorted({r for m in members for r in m.fired_at(threat)})  # this norm's evidence and the probes'
    evaluated = sorted({r for m in members for r in m.diagnosis.evaluated})
    adapted = bool(fired) and all(m.adapted(threat) for m in members)
    elsewhere: dict[str, list[str]] = {}
    for m in members:
        for norm, rules in m.diagnosis.fired_elsewhere(threat[0]).items():
            elsewhere[norm] = sorted((set(elsewhere.get(norm, [])) | set(rules)) - set(fired))
    elsewhere = {k: v for k, v in elsewhere.items() if v}
    return Row(label=label, defense=first.info.defense, arch=first.info.arch,
               model_ids=[m.model_id for m in members], seeds=[m.info.seed for m in members],
               changes=first.changes, clean=Cell.of([t.clean for t in threats]),
               robust=Cell.of([t.worst for t in threats]), autoattack=cell(aa), claimed=cell(claimed),
               attacks={k: Cell.of([t.attacks[k].accuracy for t in threats]) for k in keys},
               verdict=verdict_text(fired, evaluated), verdict_cell=verdict_cell(fired, evaluated, adapted, elsewhere),
               fired=fired, fired_elsewhere=elsewhere, evaluated=evaluated, reasons=reasons, n_examples=threats[0].clean.n, adapted=adapted,
               robust_before=Cell.of([t.worst_before for t in threats]),
               adaptive_attacks=sorted({a.key for t in threats for a in t.attacks.values()
                                        if any(r.adaptive for r in a.records)}),
               certified=_certified_cell(threats),
               not_certifiable=sorted({why for t in threats if t.certificate for why in t.certificate.not_certifiable}),
               survived=[t.worst_survived for t in threats])


def _certified_cell(threats) -> Cell | None:
    certificates = [t.certificate for t in threats]
    if any(c is None for c in certificates):
        return None
    methods = sorted({m for c in certificates for m in c.methods})
    return Cell.of([c.accuracy for c in certificates], ", ".join(methods))


def _examples(row: Row) -> frozenset:
    sets = [frozenset(int(i) for i in s.index) for s in row.survived]
    return frozenset.intersection(*sets) if sets else frozenset()


def _paired(a: Row, b: Row, examples: list[int]):
    """Both rows' worst-case outcomes on the same examples, seeds paired in order."""
    k = min(len(a.survived), len(b.survived))
    xs = [v for s in a.survived[:k] for v in s.loc[examples].tolist()]
    ys = [v for s in b.survived[:k] for v in s.loc[examples].tolist()]
    return xs, ys


def _rank(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    order = lambda r: (-r.robust.value, -r.clean.value, r.label)
    sets = {id(r): _examples(r) for r in rows}
    full = max(sets.values(), key=len) if sets else frozenset()
    for r in rows:  # one evaluation set per table: rows are compared on the same examples
        if r.ranked and sets[id(r)] != full:
            r.reasons.append(f"evaluated on {len(sets[id(r)])} of the table's {len(full)} examples "
                             f"(every ranked row of a table shares its examples)")
    ranked = sorted([r for r in rows if r.ranked], key=order)
    examples = sorted(full)
    pairs = [(i, j) for i in range(len(ranked)) for j in range(i + 1, len(ranked))]
    tests = [mcnemar_exact(*_paired(ranked[i], ranked[j], examples)) for i, j in pairs]
    separated_flags = holm([p for _, _, p in tests])
    separated = set()
    for (i, j), (only_i, only_j, p), sep in zip(pairs, tests, separated_flags):
        ranked[i].comparisons.append((ranked[j].label, only_i, only_j, p, sep))
        ranked[j].comparisons.append((ranked[i].label, only_j, only_i, p, sep))
        if sep:
            separated.add(frozenset((i, j)))
    letters = letter_groups(list(range(len(ranked))), separated)
    for i, row in enumerate(ranked):
        row.rank = i + 1
        row.group = letters[i] if len(ranked) > 1 else ""
        row.tied_with_above = bool(i) and bool(set(letters[i]) & set(letters[i - 1]))
    unranked = sorted([r for r in rows if not r.ranked], key=order)
    return ranked, unranked


def build_board(assessments: dict[str, ModelAssessment], commands: dict[tuple[str, str], list[str]] | None = None) -> Board:
    """Pages per dataset × norm, a table per budget, a row per configuration (seeds pooled)."""
    by_page: dict[tuple[str, str], list[ModelAssessment]] = defaultdict(list)
    for m in assessments.values():
        for norm in sorted({norm for norm, _ in m.threats}):
            by_page[(m.info.dataset, norm)].append(m)
    pages, all_labels = [], {}
    for (dataset, norm), models in sorted(by_page.items()):
        groups: dict[tuple, list[ModelAssessment]] = defaultdict(list)
        for m in sorted(models, key=lambda m: (m.info.seed, m.model_id)):
            groups[m.group_key].append(m)
        labels, header = _page_labels(groups)
        tables = []
        for eps in sorted({eps for m in models for n_, eps in m.threats if n_ == norm}):
            threat = (norm, eps)
            rows = []
            for key, members in groups.items():
                present = [m for m in members if threat in m.threats]
                if present:
                    rows.append(_row(labels[key], present, threat))
            ranked, unranked = _rank(rows)
            keys = sorted({k for r in rows for k in r.attacks})
            tables.append(Table(dataset, norm, eps, ranked, unranked, keys))
        sizes = {r.n_examples for t in tables for r in t.rows}
        if len(sizes) == 1:
            header = {"n": str(next(iter(sizes))), **header}
        page_labels = {m.model_id: labels[key] for key, members in groups.items() for m in members}
        all_labels.update(page_labels)
        pages.append(Page(dataset, norm, tables, header, {m.model_id: m for m in models}, page_labels,
                          (commands or {}).get((dataset, norm), [])))
    return Board(pages, assessments, all_labels)
