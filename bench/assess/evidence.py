"""Records → evidence per threat model: each attack merged per example, and the worst case.

For one model at one (norm, ε): the evaluation set, clean accuracy, the per-example worst case over
every record the store holds for that model and budget (several configs, restarts and overlapping
slices merge per example: a weaker re-run can never raise it), each attack merged over its records,
and the minimum-suite requirements with no record. `ModelEvidence` is what the masking rules read
(bench/assess/rules.py); `ModelAssessment` (bench/assess/assessment.py) adds their diagnosis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import pandas as pd

from bench.assess.reference import is_own_reference
from bench.assess.stats import Accuracy
from bench.assess.suite import MINIMUM_SUITE, SuiteRequirement
from bench.assess.traces import either, still_moving
from bench.plugins.registry import ATTACKS
from bench.store.records import AttackInfo, Binarization, ModelInfo, Probes, Record


# --- per attack, per threat model ------------------------------------------------------------------
@dataclass
class AttackSummary:
    """One attack on one model at one budget, merged over every record of it (configs, slices)."""

    key: str  # the attack's name, with its loss when one attack ran with several losses
    info: AttackInfo  # of the first record (role, loss, library)
    records: list[Record]
    survived: pd.Series  # bool per example index of the evaluation set that this attack covered
    fooled_any_size: pd.Series  # bool per covered example: misclassified at any perturbation size

    @property
    def accuracy(self) -> Accuracy:
        return Accuracy(int(self.survived.sum()), int(len(self.survived)))

    @property
    def unbounded_success(self) -> Accuracy:
        """Share of the attacked (clean-correct) examples fooled at any size (minimal-norm attacks)."""
        attacked = self.fooled_any_size.index[self.clean_correct]
        return Accuracy(int(self.fooled_any_size[attacked].sum()), int(len(attacked)))

    clean_correct: pd.Series = field(default=None)
    # which component broke each example, for an ensemble that reports it (AutoAttack); None otherwise
    broken_by: pd.Series | None = None
    derived: bool = False  # a component of an ensemble (AutoAttack's APGD-CE), read from its broken_by
    # the harness's trace of the attack's queries (bench/execute/observer.py), per covered example:
    # traced (queries seen), steady (some record's trace had flattened), silent successes counted
    traced: pd.Series | None = None
    steady: pd.Series | None = None
    silent: int = 0
    # a transfer attack's points that fooled its surrogate (the harness predicted them there); None otherwise
    surrogate_fooled: pd.Series | None = None

    @property
    def incomplete(self) -> pd.Series | None:
        """Examples the attack left robust whose objective was still improving at the end of every
        traced record of it (Pintor et al. 2022, incomplete optimisation); None without traces."""
        if self.traced is None or not self.traced.any():
            return None
        idx = self.survived.index
        return self.survived & self.traced.reindex(idx, fill_value=False) & ~self.steady.reindex(idx, fill_value=False)


@dataclass(frozen=True)
class Certificate:
    """The certified examples of one model at one budget: a sound lower bound on robust accuracy,
    merged over every certifier's record (each is sound, so their union is)."""

    certified: pd.Series  # bool per example of the evaluation set: certified by some certifier
    records: tuple[Record, ...]
    not_certifiable: tuple[str, ...]  # the reasons certifiers gave, where the model cannot be bounded

    @property
    def accuracy(self) -> Accuracy:
        return Accuracy(int(self.certified.sum()), int(len(self.certified)))

    @property
    def methods(self) -> list[str]:
        return sorted({r.attack.name for r in self.records})


def _certificate(records: list[Record], frames: dict, examples: pd.Index) -> Certificate | None:
    if not records:
        return None
    certified = pd.Series(False, index=examples)
    for r in records:
        f = frames[r.record_id]
        common = f.index.intersection(examples)
        ok = f.loc[common, "adv_correct"].astype(bool) & f.loc[common, "clean_correct"].astype(bool)
        certified.loc[common] = certified.loc[common] | ok
    reasons = tuple(sorted({r.metrics.extra.get("not_certifiable_reason") for r in records
                            if r.metrics.extra.get("not_certifiable_reason")}))
    return Certificate(certified, tuple(sorted(records, key=lambda r: r.record_id)), reasons)


@dataclass
class ThreatAssessment:
    """One model at one budget: the evaluation set, clean and worst-case accuracy, each attack."""

    norm: str
    eps: float
    examples: pd.Index  # example indices of the evaluation set
    clean: Accuracy
    worst: Accuracy
    worst_survived: pd.Series  # bool per example: survived every record covering it
    attacks: dict[str, AttackSummary]
    missing: list[SuiteRequirement]  # minimum-suite requirements with no record
    majority_share: float  # accuracy of the best constant predictor on the evaluation set
    worst_before: Accuracy = None  # the worst case over the records the adaptive stage did not add
    records: list[Record] = field(default_factory=list)
    certificate: Certificate | None = None  # the certified lower bound, when a certifier ran
    failed_binarization: tuple[str, ...] = ()  # attacks left out of the minimum suite: they failed the test
    # record id → examples of the evaluation set that record alone broke (every other record left them
    # robust): what a record adds to the worst case (W7 asks it of records run with restarts)
    sole_breaks: Mapping[str, int] = field(default_factory=dict)

    @property
    def unsound(self) -> int:
        """Certified examples that some attack broke: 0 unless a certifier or an attack is wrong."""
        if self.certificate is None:
            return 0
        certified = self.certificate.certified.reindex(self.examples, fill_value=False)
        return int((certified & ~self.worst_survived).sum())

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def at_chance(self) -> bool:
        """Clean accuracy not clearly above chance: the lower end of its 95% Wilson interval does
        not exceed what the best constant predictor scores on the same examples."""
        return not self.clean.interval[0] > self.majority_share

    def strongest(self, pick: Callable[[AttackSummary], bool]) -> AttackSummary | None:
        """The attack leaving the fewest robust examples among those `pick` selects."""
        chosen = [a for a in self.attacks.values() if pick(a)]
        return min(chosen, key=lambda a: (a.accuracy.value, a.key)) if chosen else None

    @property
    def claimed(self) -> AttackSummary | None:
        """What the defense's own evaluation reports: iterative white-box attacks on cross-entropy
        or softmax (PGD-CE at L∞/L2, JSMA at L0), the strongest of them."""
        return self.strongest(lambda a: a.info.role == "gradient" and a.info.loss in ("ce", "softmax")
                               and not a.info.single_step and not a.derived)

    @property
    def autoattack(self) -> AttackSummary | None:
        from bench.assess.suite import AUTOATTACK  # the reference column: the built-in AutoAttack only

        return self.strongest(lambda a: AUTOATTACK.matches(a.info))


def _default_loss(name: str) -> str | None:
    try:
        return ATTACKS.get(name).obj.loss_for({})
    except Exception:  # an attack plugin no longer installed
        return None


def _attack_key(rec: Record, losses_by_name: dict[str, set]) -> str:
    """The attack's name; with its loss when it ran with a loss other than its default (e.g.
    `pgd-margin (logits)` for CE on rescaled logits), so a column means the same on every row."""
    default = _default_loss(rec.attack.name)
    if default is None:
        default = sorted(losses_by_name[rec.attack.name])[0]
    return rec.attack.name if rec.attack.loss == default else f"{rec.attack.name} ({rec.attack.loss})"


def assess_threat(records: list[Record], load: Callable[[Record], pd.DataFrame],
                  failed_binarization: frozenset[str] = frozenset()) -> ThreatAssessment:
    """Merge every record of one model at one (norm, ε) per example. Certifiers' records (role
    "certificate") are lower bounds: they make the certificate, never the worst case. A record
    whose attack failed the binarization test (`failed_binarization`: record ids) still counts in
    the worst case but not toward the minimum suite: it could not find what exists."""
    norm, eps = records[0].threat
    frames = {r.record_id: load(r).set_index("index") for r in records}
    certificates = [r for r in records if r.attack.role == "certificate"]
    records = [r for r in records if r.attack.role != "certificate"] or certificates
    coverage = {r.record_id: frames[r.record_id].index for r in records}
    requirements = MINIMUM_SUITE.get(norm, ())
    missing, req_cover = [], []
    for req in requirements:
        matching = [r for r in records if req.matches(r.attack) and r.record_id not in failed_binarization]
        if not matching:
            missing.append(req)
        else:
            cover = coverage[matching[0].record_id]
            for r in matching[1:]:
                cover = cover.union(coverage[r.record_id])
            req_cover.append(cover)
    examples = None
    if not missing and req_cover:
        examples = req_cover[0]
        for cover in req_cover[1:]:
            examples = examples.intersection(cover)
    if examples is None or len(examples) == 0:  # incomplete suite: everything any record covered
        examples = coverage[records[0].record_id]
        for r in records[1:]:
            examples = examples.union(coverage[r.record_id])
    examples = examples.sort_values()

    clean = pd.Series(True, index=examples)
    worst = pd.Series(True, index=examples)
    before = pd.Series(True, index=examples)
    labels = pd.Series(-1, index=examples)
    losses_by_name: dict[str, set] = {}
    for r in records:
        losses_by_name.setdefault(r.attack.name, set()).add(r.attack.loss)
    per_attack: dict[str, dict] = {}
    broken_by_record: dict[str, pd.Series] = {}
    for r in records:
        f = frames[r.record_id]
        common = f.index.intersection(examples)
        if len(common) == 0:
            continue
        f = f.loc[common]
        clean_r, adv_r = f["clean_correct"].astype(bool), f["adv_correct"].astype(bool)
        broken_by_record[r.record_id] = (~adv_r).reindex(examples, fill_value=False)
        clean.loc[common] = clean.loc[common] & clean_r
        worst.loc[common] = worst.loc[common] & adv_r
        if not r.adaptive:
            before.loc[common] = before.loc[common] & adv_r
        labels.loc[common] = f["label"].astype(int)
        fooled = clean_r & (f["adv_pred"].astype(int) != f["label"].astype(int))
        key = _attack_key(r, losses_by_name)
        slot = per_attack.setdefault(key, {"records": [], "survived": None, "fooled": None, "clean": None,
                                            "broken_by": None, "traced": None, "steady": None, "silent": 0,
                                            "surrogate_fooled": None})
        slot["records"].append(r)
        trace = still_moving(f)
        if trace is not None:
            traced, moving = trace
            slot["traced"] = either(slot["traced"], traced)
            slot["steady"] = either(slot["steady"], traced & ~moving)
            slot["silent"] += int(f["silent_success"].astype(bool).sum()) if "silent_success" in f.columns else 0
        if "surrogate_fooled" in f.columns:
            slot["surrogate_fooled"] = either(slot["surrogate_fooled"], f["surrogate_fooled"].astype(bool))
        if "adapter_broken_by" in f.columns:
            by = f["adapter_broken_by"].fillna("").astype(str)
            slot["broken_by"] = by if slot["broken_by"] is None else slot["broken_by"].combine_first(
                by.where(by != "")).reindex(slot["broken_by"].index.union(by.index)).fillna("")
        if slot["survived"] is None:
            slot["survived"], slot["fooled"], slot["clean"] = adv_r, fooled, clean_r
        else:
            idx = slot["survived"].index.union(common)
            slot["survived"] = slot["survived"].reindex(idx, fill_value=True) & adv_r.reindex(idx, fill_value=True)
            slot["fooled"] = slot["fooled"].reindex(idx, fill_value=False) | fooled.reindex(idx, fill_value=False)
            slot["clean"] = slot["clean"].reindex(idx, fill_value=True) & clean_r.reindex(idx, fill_value=True)
    worst = worst & clean
    before = before & clean
    attacks = {
        key: AttackSummary(key, slot["records"][0].attack, sorted(slot["records"], key=lambda r: r.record_id),
                           slot["survived"] & slot["clean"], slot["fooled"], slot["clean"], slot["broken_by"],
                           traced=slot["traced"], steady=slot["steady"], silent=slot["silent"],
                           surrogate_fooled=slot["surrogate_fooled"])
        for key, slot in sorted(per_attack.items())
    }
    # AutoAttack runs APGD-CE first on every example: with its per-component results, APGD-CE alone
    # is known too, the strongest cross-entropy attack the suite has (the rules compare losses with it)
    for key, a in list(attacks.items()):
        if a.info.role == "ensemble" and a.broken_by is not None:
            by = a.broken_by.reindex(a.clean_correct.index, fill_value="")
            survived = a.clean_correct & (by != "apgd-ce")
            info = AttackInfo(f"{a.info.name}: apgd-ce", a.info.config, a.info.library, a.info.library_version,
                              False, "gradient", "ce", False)
            attacks[f"{key}: apgd-ce"] = AttackSummary(f"{key}: apgd-ce", info, a.records, survived,
                                                       a.clean_correct & ~survived, a.clean_correct, None, True)
    counts = labels.value_counts()
    majority = float(counts.max() / len(labels)) if len(labels) else math.nan
    times_broken = sum(broken_by_record.values(), pd.Series(0, index=examples))
    sole_breaks = {rid: int((broken & (times_broken == 1) & clean).sum()) for rid, broken in broken_by_record.items()}
    if records is certificates:  # only certificates at this budget: no attack, no worst case of its own
        attacks, worst, before = {}, clean.copy(), clean.copy()
    return ThreatAssessment(norm, eps, examples, Accuracy(int(clean.sum()), len(examples)),
                            Accuracy(int(worst.sum()), len(examples)), worst, attacks, missing, majority,
                            Accuracy(int(before.sum()), len(examples)), sorted(records, key=lambda r: r.record_id),
                            _certificate(certificates, frames, examples),
                            tuple(sorted({r.attack.name for r in records if r.record_id in failed_binarization})),
                            sole_breaks)


@dataclass(frozen=True)
class ModelEvidence:
    """Everything judged about one model: its threat models, its probes, and the undefended model
    of the same spec (rule R7's reference) with its probes."""

    info: ModelInfo
    threats: dict[tuple[str, float], ThreatAssessment]
    probes: Probes | None
    reference: ModelInfo | None
    reference_probes: Probes | None
    binarization: tuple[Binarization, ...] = ()  # the binarization tests of its attacks

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @property
    def own_reference(self) -> bool:
        """It is the undefended model of its spec: R7 compares it with itself (bench/assess/reference.py)."""
        return is_own_reference(self.info)

    @property
    def has_teacher(self) -> bool:
        return "teacher" in self.info.upstream
