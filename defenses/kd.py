"""Distillation losses shared by the defenses."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of the student's softmax at T against the teacher's soft labels (Papernot 2016,
    eq. 3 trains the student on F(X) computed at the same T). Mean over the batch."""
    return -(teacher_probs * F.log_softmax(student_logits / temperature, dim=1)).sum(dim=1).mean()


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(t/T) ‖ softmax(s/T)) with batch-mean reduction (Hinton et al. 2015; TAKD).

    'batchmean' is the reduction that equals the KL divergence; the element-wise mean of some
    reference code divides by the number of classes as well."""
    return F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * temperature**2


@torch.no_grad()
def soft_labels(teacher: torch.nn.Module, x: torch.Tensor, temperature: float, device, batch_size: int = 1000) -> torch.Tensor:
    """softmax(teacher(x) / T) over a whole tensor, on the CPU, float32."""
    from bench.plugins.training import predict_logits

    return F.softmax(predict_logits(teacher, x, device, batch_size) / temperature, dim=1)


def takd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, temperature: float,
              alpha: float) -> torch.Tensor:
    """(1 − α)·CE(s, y) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)) (Hinton et al. 2015; TAKD, Mirzadeh et al. 2020)."""
    loss = alpha * kd_kl(student_logits, teacher_logits, temperature)
    if alpha < 1:
        loss = loss + (1 - alpha) * F.cross_entropy(student_logits, y)
    return loss
