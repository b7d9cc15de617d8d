"""Records + probes → one typed `ModelAssessment` per model: the only place results are judged.

For each model: its verdict (every masking rule's finding, and which rules could be evaluated),
and for each threat model (norm, ε): the per-attack results, the per-example worst case over every
record the store holds for that model and budget (several configs, restarts and overlapping slices
merge per example: a weaker re-run can never raise it), what the defense's own evaluation would
have claimed, whether the minimum suite was run, and whether clean accuracy is above chance.
Every output (bench run's table, bench leaderboard, publish pages, model pages, JSON, CSV) is a
view of these assessments; see docs/architecture.md and docs/leaderboard.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from bench import adaptive
from bench.records import AttackInfo, ModelInfo, Probes, Record, ResultSet
from bench.stats import Accuracy, wilson


# --- the minimum suite a row needs to be ranked ---------------------------------------------------
@dataclass(frozen=True)
class SuiteRequirement:
    key: str
    description: str
    matches: Callable[[AttackInfo], bool]


def _is_reference_ensemble(a: AttackInfo) -> bool:
    return a.role == "ensemble" and a.config.get("version", "standard") in ("standard", "plus")


def _is_logit_white_box(a: AttackInfo) -> bool:
    return a.role == "gradient" and a.loss in ("margin", "logits") and not a.single_step


AUTOATTACK = SuiteRequirement("autoattack", "AutoAttack standard", _is_reference_ensemble)
LOGIT_WHITE_BOX = SuiteRequirement("logit-white-box", "a white-box attack on a margin or logit loss (pgd-margin)",
                                   _is_logit_white_box)
BLACK_BOX = SuiteRequirement("black-box", "a black-box attack (square) or transfer",
                             lambda a: a.role in ("black-box", "transfer"))
MINIMAL_NORM = SuiteRequirement("minimal-norm", "C&W (a minimal-norm white-box attack)",
                                lambda a: a.role == "gradient" and a.minimal_norm)
SALIENCY_L0 = SuiteRequirement("jsma", "JSMA (a white-box L0 attack)", lambda a: a.role == "gradient")
LOGIT_L0 = SuiteRequirement("logit-l0", "an L0 attack on logits (JSMA with use_logits=true)", _is_logit_white_box)
GRADIENT_FREE_L0 = SuiteRequirement("gradient-free-l0", "a gradient-free L0 attack (sparse-rs)",
                                    lambda a: a.role == "black-box")

# Per threat model, what a row needs before its worst case is a ranked number (docs/leaderboard.md).
# L∞ and L2 follow the accepted practice (Croce & Hein 2020; Carlini et al. 2019 §4): the reference
# ensemble, a logit-loss white-box attack (blind to softmax saturation), and a gradient-free attack
# (blind to gradient masking), plus C&W at L2. At L0, softmax JSMA (the attack defensive
# distillation was tuned against) is not enough: JSMA on logits and Sparse-RS (gradient-free) too.
MINIMUM_SUITE: dict[str, tuple[SuiteRequirement, ...]] = {
    "linf": (AUTOATTACK, LOGIT_WHITE_BOX, BLACK_BOX),
    "l2": (AUTOATTACK, LOGIT_WHITE_BOX, BLACK_BOX, MINIMAL_NORM),
    "l0": (SALIENCY_L0, LOGIT_L0, GRADIENT_FREE_L0),
}


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

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def at_chance(self) -> bool:
        """Clean accuracy not clearly above chance: the lower end of its 95% Wilson interval does
        not exceed what the best constant predictor scores on the same examples."""
        return not self.clean.interval[0] > self.majority_share

    def _strongest(self, pick: Callable[[AttackSummary], bool]) -> AttackSummary | None:
        chosen = [a for a in self.attacks.values() if pick(a)]
        return min(chosen, key=lambda a: (a.accuracy.value, a.key)) if chosen else None

    @property
    def claimed(self) -> AttackSummary | None:
        """What the defense's own evaluation reports: iterative white-box attacks on cross-entropy
        or softmax (PGD-CE at L∞/L2, JSMA at L0), the strongest of them."""
        return self._strongest(lambda a: a.info.role == "gradient" and a.info.loss in ("ce", "softmax")
                               and not a.info.single_step and not a.derived)

    @property
    def autoattack(self) -> AttackSummary | None:
        return self._strongest(lambda a: a.info.role == "ensemble")


def _default_loss(name: str) -> str | None:
    try:
        from bench.registry import ATTACKS

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


def assess_threat(records: list[Record], load: Callable[[Record], pd.DataFrame]) -> ThreatAssessment:
    """Merge every record of one model at one (norm, ε) per example."""
    norm, eps = records[0].threat
    frames = {r.record_id: load(r).set_index("index") for r in records}
    coverage = {r.record_id: frames[r.record_id].index for r in records}
    requirements = MINIMUM_SUITE.get(norm, ())
    missing, req_cover = [], []
    for req in requirements:
        matching = [r for r in records if req.matches(r.attack)]
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
    for r in records:
        f = frames[r.record_id]
        common = f.index.intersection(examples)
        if len(common) == 0:
            continue
        f = f.loc[common]
        clean_r, adv_r = f["clean_correct"].astype(bool), f["adv_correct"].astype(bool)
        clean.loc[common] = clean.loc[common] & clean_r
        worst.loc[common] = worst.loc[common] & adv_r
        if not r.adaptive:
            before.loc[common] = before.loc[common] & adv_r
        labels.loc[common] = f["label"].astype(int)
        fooled = clean_r & (f["adv_pred"].astype(int) != f["label"].astype(int))
        key = _attack_key(r, losses_by_name)
        slot = per_attack.setdefault(key, {"records": [], "survived": None, "fooled": None, "clean": None,
                                            "broken_by": None})
        slot["records"].append(r)
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
                           slot["survived"] & slot["clean"], slot["fooled"], slot["clean"], slot["broken_by"])
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
    return ThreatAssessment(norm, eps, examples, Accuracy(int(clean.sum()), len(examples)),
                            Accuracy(int(worst.sum()), len(examples)), worst, attacks, missing, majority,
                            Accuracy(int(before.sum()), len(examples)), sorted(records, key=lambda r: r.record_id))


# --- per model -------------------------------------------------------------------------------------
def default_config(defense: str) -> dict | None:
    try:
        from bench.registry import DEFENSES
        from bench.specs import config_to_dict

        return config_to_dict(DEFENSES.get(defense).obj.Config())
    except Exception:  # a defense plugin no longer installed: every field is shown
        return None


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def config_changes(defense: str, config: Mapping) -> dict[str, str]:
    """Config fields that differ from the defense's defaults, as display strings."""
    default = default_config(defense) or {}
    return {k: _fmt(v) for k, v in sorted(config.items()) if k not in default or default[k] != v}


@dataclass
class ModelAssessment:
    info: ModelInfo
    threats: dict[tuple[str, float], ThreatAssessment]
    probes: Probes | None
    reference: ModelInfo | None  # the undefended model of the same spec (rule R7's reference)
    reference_probes: Probes | None
    diagnosis: "object" = None  # bench.masking.Diagnosis, set by assess()

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @property
    def changes(self) -> dict[str, str]:
        return config_changes(self.info.defense, self.info.config)

    @property
    def group_key(self) -> tuple:
        """Models equal but for the seed (and upstream ids, which follow the seed) share a row."""
        import json

        return (self.info.defense, json.dumps(dict(self.info.config), sort_keys=True), self.info.arch,
                self.info.dataset)

    def rank_blockers(self, threat: tuple[str, float]) -> list[str]:
        """Why this model's row at `threat` cannot be ranked (empty: it can)."""
        t = self.threats[threat]
        reasons = []
        if t.missing:
            reasons.append("missing " + "; ".join(req.description for req in t.missing))
        if t.at_chance:
            low = t.clean.interval[0]
            reasons.append(f"clean accuracy not above chance (95% lower bound {100 * low:.1f}% ≤ "
                           f"{100 * t.majority_share:.1f}%, the best constant predictor)")
        if self.diagnosis is not None and self.diagnosis.suspected and not self.adapted(threat):
            fired = self.diagnosis.fired
            why = []
            unanswered = adaptive.unanswered(fired, t.norm)
            if unanswered:
                why.append(f"no adaptive attack for {', '.join(unanswered)} at {t.norm} yet")
            todo = adaptive.missing(fired, t.norm, t.records, self.has_teacher)
            if todo:
                why.append("adaptive attacks not run: " + ", ".join(p.label for p in todo))
            reasons.append(f"masking suspected ({', '.join(fired)}), not resolved: {'; '.join(why)}")
        return reasons

    def adapted(self, threat: tuple[str, float]) -> bool:
        """Every adaptive attack the fired rules call for has run at this budget (docs/masking.md)."""
        if self.diagnosis is None or not self.diagnosis.suspected:
            return False
        t = self.threats[threat]
        fired = self.diagnosis.fired
        return not adaptive.unanswered(fired, t.norm) and not adaptive.missing(fired, t.norm, t.records,
                                                                              self.has_teacher)

    @property
    def has_teacher(self) -> bool:
        return "teacher" in self.info.upstream


def _base(arch: str) -> str:
    try:
        from bench.archs import base_arch

        return base_arch(arch)
    except Exception:
        return arch


def find_reference(info: ModelInfo, models: Mapping[str, ModelInfo]) -> ModelInfo | None:
    """The undefended model trained like `info`: `vanilla` with default config but for the
    training length, same dataset, base architecture and seed. Chosen by spec, never by label."""
    if info.defense == "vanilla" and info.arch == _base(info.arch) and not config_changes("vanilla", {k: v for k, v in info.config.items()
                                                                     if k != "epochs"}):
        return None  # it is its own reference
    default = default_config("vanilla") or {}
    arch = _base(info.arch)
    for other in sorted(models.values(), key=lambda m: m.model_id):
        if (other.defense == "vanilla" and other.dataset == info.dataset and other.arch == arch
                and other.seed == info.seed and other.config.get("epochs") == info.config.get("epochs")
                and all(other.config.get(k, v) == v for k, v in default.items() if k != "epochs")):
            return other
    return None


def assess(results: ResultSet, model_ids=None) -> dict[str, ModelAssessment]:
    """model id → its assessment, over every record of the result set (per dataset: a model is
    trained on one dataset, so its records are all on that dataset)."""
    from bench.masking import diagnose

    out: dict[str, ModelAssessment] = {}
    for model_id, recs in sorted(results.by_model().items()):
        if model_ids is not None and model_id not in model_ids:
            continue
        by_threat: dict[tuple[str, float], list[Record]] = {}
        for r in recs:
            by_threat.setdefault(r.threat, []).append(r)
        threats = {k: assess_threat(v, results.per_example) for k, v in sorted(by_threat.items())}
        info = results.models[model_id]
        reference = find_reference(info, results.models)
        ma = ModelAssessment(info, threats, results.probes_of(model_id, info.dataset), reference,
                             results.probes_of(reference.model_id, info.dataset) if reference else None)
        ma.diagnosis = diagnose(ma)
        out[model_id] = ma
    return out


def pooled(accuracies: list[Accuracy]) -> Accuracy:
    return Accuracy(sum(a.correct for a in accuracies), sum(a.n for a in accuracies))


def seed_spread(accuracies: list[Accuracy]) -> float:
    """Standard deviation over seeds (0 for one seed)."""
    values = [a.value for a in accuracies]
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


__all__ = ["MINIMUM_SUITE", "SuiteRequirement", "AttackSummary", "ThreatAssessment", "ModelAssessment", "assess",
           "assess_threat", "find_reference", "config_changes", "pooled", "seed_spread", "wilson"]
