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

import json
from dataclasses import dataclass

import numpy as np

from bench.assess import remedies
from bench.assess.evidence import ModelEvidence, assess_threat
from bench.assess.masking import Diagnosis, diagnose
from bench.assess.reference import config_changes, find_reference
from bench.assess.stats import Accuracy
from bench.store.records import Record, ResultSet


# --- per model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelAssessment(ModelEvidence):
    """A model's evidence with its diagnosis (the verdict every row of it carries)."""

    diagnosis: Diagnosis = None  # set by `of`; a default only because the evidence has defaulted fields

    @classmethod
    def of(cls, evidence: ModelEvidence) -> "ModelAssessment":
        fields = {name: getattr(evidence, name) for name in ModelEvidence.__dataclass_fields__}
        return cls(**fields, diagnosis=diagnose(evidence))

    @property
    def changes(self) -> dict[str, str]:
        return config_changes(self.info.defense, self.info.config)

    @property
    def group_key(self) -> tuple:
        """Models equal but for the seed (and upstream ids, which follow the seed) share a row; a model
        trained by other code (an edited defense or training loop) is another row, never a seed."""
        return (self.info.defense, json.dumps(dict(self.info.config), sort_keys=True), self.info.arch,
                self.info.dataset, self.info.code_digest)

    def rank_blockers(self, threat: tuple[str, float]) -> list[str]:
        """Why this model's row at `threat` cannot be ranked (empty: it can)."""
        t = self.threats[threat]
        reasons = []
        if t.missing:
            failed = (f" ({', '.join(t.failed_binarization)} failed the binarization test)"
                      if t.failed_binarization else "")
            reasons.append("missing " + "; ".join(req.description for req in t.missing) + failed)
        if t.unsound:
            reasons.append(f"{t.unsound} certified example(s) broken by an attack: a certifier or an attack is wrong")
        if t.at_chance:
            low = t.clean.interval[0]
            reasons.append(f"clean accuracy not above chance (95% lower bound {100 * low:.1f}% ≤ "
                           f"{100 * t.majority_share:.1f}%, the best constant predictor)")
        fired = self.fired_at(threat)
        if fired and not self.adapted(threat):
            why = []
            unanswered = remedies.unanswered(fired, t.norm)
            if unanswered:
                why.append(f"no adaptive attack for {', '.join(unanswered)} at {t.norm} yet")
            todo = remedies.missing(fired, t.norm, t.records, self.has_teacher)
            if todo:
                why.append("adaptive attacks not run: " + ", ".join(p.label for p in todo))
            reasons.append(f"masking suspected ({', '.join(fired)}), not resolved: {'; '.join(why)}")
        weak = self.weak_at(threat)
        todo = remedies.missing(weak, t.norm, t.records, self.has_teacher)
        if todo:
            reasons.append(f"an attack of the suite is weak on this model ({', '.join(weak)}, docs/masking.md): "
                           f"stronger attacks not run: {', '.join(p.label for p in todo)}")
        persisting = [rule for rule in weak if rule in remedies.INDICATORS]
        if persisting and not todo:  # their remedies ran, and the indicator still fires on the merged evidence
            reasons.append(f"attack-failure indicator {', '.join(persisting)} still fires after its remedies ran "
                           f"(docs/masking.md, \"Attack-failure indicators\")")
        return reasons

    def weak_at(self, threat: tuple[str, float]) -> list[str]:
        """The attack-strength findings (W1-W6) that fired at this budget."""
        from bench.assess.rules import _threat_name  # the findings' evidence is keyed by it

        name = _threat_name(self.threats[threat])
        return [f.rule for f in self.diagnosis.strength if f.fired and name in f.evidence]

    def fired_at(self, threat: tuple[str, float]) -> list[str]:
        """The masking rules that fired on evidence at this budget's norm or on the model itself: the
        verdict of its rows (docs/masking.md, "The verdict")."""
        return self.diagnosis.fired_at(threat[0])

    def adapted(self, threat: tuple[str, float]) -> bool:
        """Every adaptive attack the fired rules call for has run at this budget (docs/masking.md)."""
        fired = self.fired_at(threat)
        if not fired:
            return False
        t = self.threats[threat]
        return not remedies.unanswered(fired, t.norm) and not remedies.missing(fired, t.norm, t.records,
                                                                              self.has_teacher)


def assess(results: ResultSet, model_ids=None) -> dict[str, ModelAssessment]:
    """model id → its assessment, over every record of the result set (per dataset: a model is
    trained on one dataset, so its records are all on that dataset)."""
    out: dict[str, ModelAssessment] = {}
    for model_id, recs in sorted(results.by_model().items()):
        if model_ids is not None and model_id not in model_ids:
            continue
        by_threat: dict[tuple[str, float], list[Record]] = {}
        for r in recs:
            by_threat.setdefault(r.threat, []).append(r)
        binarization = results.binarizations_of(model_id)
        failed = frozenset(b.record_id for b in binarization if b.passed is False)
        threats = {k: assess_threat(v, results.per_example, failed) for k, v in sorted(by_threat.items())}
        info = results.models[model_id]
        reference = find_reference(info, results.models)
        out[model_id] = ModelAssessment.of(ModelEvidence(
            info, threats, results.probes_of(model_id, info.dataset), reference,
            results.probes_of(reference.model_id, info.dataset) if reference else None, binarization))
    return out


def pooled(accuracies: list[Accuracy]) -> Accuracy:
    return Accuracy(sum(a.correct for a in accuracies), sum(a.n for a in accuracies))


def seed_spread(accuracies: list[Accuracy]) -> float:
    """Standard deviation over seeds (0 for one seed)."""
    values = [a.value for a in accuracies]
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

