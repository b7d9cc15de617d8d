"""Certify the examples of a record: a certifier's verdict per example, judged like an attack's.

The harness predicts the clean inputs itself; an example counts as certified only if it is
classified correctly and the certifier's bounds say that no input in the ball changes that. A model
the bounds cannot follow (a plugin's own layer, an input transform, a forward that is not a chain)
is a finding: every example is uncertified, and the record says why ("not certifiable: ...").
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from bench.core.specs import Budget
from bench.execute.evaluate import AttackOutcome
from bench.plugins.attacks.certifier import Certifier, NotCertifiable
from bench.plugins.training import predict_logits


def run_certificate(model: torch.nn.Module, certifier: Certifier, x: torch.Tensor, y: torch.Tensor, budget: Budget, *,
                    device: torch.device, batch_size: int = 500) -> AttackOutcome:
    t0 = time.perf_counter()
    model = model.eval()
    clean_pred = predict_logits(model, x, device).argmax(1).cpu()
    clean_correct = clean_pred == y
    certified = torch.zeros(len(y), dtype=torch.bool)
    notes: list[str] = []
    details: dict = {}
    reason = None
    todo = torch.nonzero(clean_correct).flatten()
    try:
        for start in range(0, len(todo), batch_size):
            idx = todo[start:start + batch_size]
            ok, details = certifier.certify(model, x[idx].to(device), y[idx].to(device), budget=budget)
            certified[idx] = ok.cpu()
    except NotCertifiable as exc:
        reason = str(exc)
        certified[:] = False
        notes.append(f"not certifiable: {reason}")
    certified &= clean_correct
    n_correct = int(clean_correct.sum())
    per_example = pd.DataFrame({
        "index": np.arange(len(y)), "label": y.numpy(), "clean_pred": clean_pred.numpy(),
        "adv_pred": clean_pred.numpy(), "clean_correct": clean_correct.numpy(), "adv_correct": certified.numpy(),
        "perturbation": np.full(len(y), np.nan), "gradient": ["ok"] * len(y),
    })
    metrics = {
        "n": int(len(y)), "clean_acc": float(clean_correct.float().mean()),
        "robust_acc": float(certified.float().mean()),  # here: certified accuracy, a lower bound
        "success_rate": float((clean_correct & ~certified).sum() / n_correct) if n_correct else 0.0,
        "unbounded_success_rate": 0.0, "perturbation": None,
        "certified_acc": float(certified.float().mean()), "certifiable": reason is None,
        "not_certifiable_reason": reason, **{f"bound_{k}": v for k, v in details.items()},
    }
    return AttackOutcome(per_example, metrics, time.perf_counter() - t0, notes)
