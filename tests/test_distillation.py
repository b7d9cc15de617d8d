"""Defensive distillation does what Papernot et al. describe, on real digits."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.plan.nodes import plan_model

T = 100.0


def _kl(p, log_q):
    return (p * (p.clamp_min(1e-30).log() - log_q)).sum(1)


def test_student_matches_teacher_soft_labels_better_than_chance(digits, digits_models):
    teacher, student = digits_models["teacher"], digits_models["student"]
    with torch.no_grad():
        p_teacher = F.softmax(teacher(digits.x_test) / T, dim=1)
        log_p_student = F.log_softmax(student(digits.x_test) / T, dim=1)
    matched = _kl(p_teacher, log_p_student).mean()
    # chance: the same soft labels paired with the wrong inputs
    shuffled = _kl(p_teacher[torch.randperm(len(p_teacher), generator=torch.Generator().manual_seed(0))],
                   log_p_student).mean()
    assert matched < 0.05 * shuffled, (matched, shuffled)
    agreement = (p_teacher.argmax(1) == log_p_student.argmax(1)).float().mean()
    assert agreement > 0.9


def test_distilled_model_is_accurate_and_deployed_at_T1_with_saturated_softmax(digits, digits_models):
    with torch.no_grad():
        logits = {k: m(digits.x_test) for k, m in digits_models.items()}
    for name in ("vanilla", "student"):
        assert (logits[name].argmax(1) == digits.y_test).float().mean() > 0.85, name
    # Carlini & Wagner 2016: distilled logits are far larger, so softmax at T=1 saturates
    norm = lambda z: z.abs().sum(1).median()
    assert norm(logits["student"]) > 20 * norm(logits["vanilla"])
    top = F.softmax(logits["student"], dim=1).amax(1)
    assert (top == 1.0).float().mean() > 0.5


def test_teacher_is_its_own_node_shared_by_config():
    node = plan_model("defensive-distillation", {"temperature": "20"}, arch="digits-cnn", dataset="digits", seed=0,
                      epochs=3)
    teacher = node.upstream["teacher"]
    assert teacher.defense == "vanilla" and teacher.config.temperature == 20.0 and teacher.config.epochs == 3
    same = plan_model("vanilla", {"temperature": 20.0}, arch="digits-cnn", dataset="digits", seed=0, epochs=3)
    assert same.model_id == teacher.model_id  # the same node, trained once, reusable by others
    other = plan_model("defensive-distillation", {"temperature": "20"}, arch="digits-cnn", dataset="digits",
                       seed=1, epochs=3)
    assert other.model_id != node.model_id and other.upstream["teacher"].model_id != teacher.model_id
