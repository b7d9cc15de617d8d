"""Run one attack on one model and judge the result ourselves.

The adapter only proposes x_adv. Here the harness checks it (shape, finite, inside [0, 1], inside
the budget), re-predicts it with the model, and records per-example outcomes. An adapter that
leaves [0, 1], or leaves its budget without being a minimal-norm attack, is a broken adapter:
the whole result is refused (AttackContractError), never silently counted.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from bench.attacks.base import Attack
from bench.errors import AttackContractError
from bench.specs import Budget
from bench.training import predict_logits

# Float rounding slack when checking a budget: x + eps clipped to [0, 1] can land a few ulps over.
_ABS_TOL = 1e-6
_REL_TOL = 1e-5


def perturbation_size(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    if norm == "linf":
        return flat.abs().amax(1)
    if norm == "l2":
        return flat.norm(dim=1)
    if norm == "l0":
        return (flat != 0).float().mean(1)  # fraction of features changed
    raise ValueError(norm)


def check_adversarial(attack: Attack, x: torch.Tensor, x_adv: torch.Tensor, budget: Budget) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate an adapter's output. Returns (sizes, within_budget) per example.

    Raises AttackContractError for a malformed output, pixels outside [0, 1], or (for attacks
    that are not minimal-norm) any example outside the budget."""
    name = attack.name
    if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x.shape:
        shape = getattr(x_adv, "shape", type(x_adv).__name__)
        raise AttackContractError(f"attack {name!r} returned {shape}, expected a tensor of shape {tuple(x.shape)}")
    x_adv = x_adv.detach().to(x.device, x.dtype)
    if not torch.isfinite(x_adv).all():
        raise AttackContractError(f"attack {name!r} returned non-finite values")
    low, high = x_adv.min().item(), x_adv.max().item()
    if low < 0 or high > 1:
        raise AttackContractError(f"attack {name!r} returned pixels outside [0, 1] (min {low:.6g}, max {high:.6g})")
    sizes = perturbation_size(x_adv - x, budget.norm)
    within = sizes <= budget.eps * (1 + _REL_TOL) + _ABS_TOL
    if not attack.minimal_norm and not within.all():
        bad = int((~within).sum())
        raise AttackContractError(
            f"attack {name!r} returned {bad} of {len(x)} examples outside the {budget} budget "
            f"(largest {budget.norm} perturbation {sizes.max().item():.6g}); result refused"
        )
    return sizes, within


@dataclass
class AttackOutcome:
    per_example: pd.DataFrame
    metrics: dict
    wall_seconds: float
    notes: list[str]  # what the attack itself reported (e.g. AutoAttack's sanity-check warnings)


def run_attack(
    model: torch.nn.Module,
    attack: Attack,
    x: torch.Tensor,
    y: torch.Tensor,
    budget: Budget,
    *,
    num_classes: int,
    seed: int,
    device: torch.device,
    batch_size: int = 500,
    quiet: bool = False,
    desc: str | None = None,
) -> AttackOutcome:
    """Attack the correctly classified examples of (x, y) and measure the outcome per example."""
    started = time.perf_counter()
    model.eval()
    clean_pred = predict_logits(model, x, device).argmax(1)
    clean_correct = clean_pred == y
    adv_pred = clean_pred.clone()
    sizes = torch.full((len(y),), float("nan"))
    within = torch.ones(len(y), dtype=torch.bool)
    generator = torch.Generator().manual_seed(seed)
    todo = clean_correct.nonzero().squeeze(1)
    bar = tqdm(total=len(todo), desc=desc or f"{attack.name} {budget}", disable=True if quiet else None, unit="ex", leave=False,
               dynamic_ncols=True)
    for start in range(0, len(todo), batch_size):
        idx = todo[start : start + batch_size]
        xb, yb = x[idx].to(device), y[idx].to(device)
        x_adv = attack.run(model, xb, yb, budget=budget, num_classes=num_classes, generator=generator)
        size_b, within_b = check_adversarial(attack, xb, x_adv, budget)
        with torch.no_grad():
            pred_b = model(x_adv.detach().to(device, xb.dtype)).argmax(1)
        adv_pred[idx] = pred_b.cpu()
        sizes[idx] = size_b.cpu()
        within[idx] = within_b.cpu()
        bar.update(len(idx))
    bar.close()

    fooled_any_size = clean_correct & (adv_pred != y)
    # a minimal-norm attack's success beyond the budget does not count at this budget
    adv_correct = clean_correct & ~(fooled_any_size & within)
    sizes = torch.where(fooled_any_size, sizes, torch.full_like(sizes, float("nan")))
    per_example = pd.DataFrame({
        "index": np.arange(len(y)),
        "label": y.numpy(),
        "clean_pred": clean_pred.numpy(),
        "adv_pred": adv_pred.numpy(),
        "clean_correct": clean_correct.numpy(),
        "adv_correct": adv_correct.numpy(),
        "perturbation": sizes.numpy(),
    })
    n_correct = int(clean_correct.sum())
    successful = sizes[fooled_any_size]
    metrics = {
        "n": int(len(y)),
        "clean_acc": float(clean_correct.float().mean()),
        "robust_acc": float(adv_correct.float().mean()),
        "success_rate": float((clean_correct & ~adv_correct).sum() / n_correct) if n_correct else 0.0,
        "unbounded_success_rate": float(fooled_any_size.sum() / n_correct) if n_correct else 0.0,
        "perturbation": (
            {"norm": budget.norm, "median": float(successful.median()), "mean": float(successful.mean())}
            if len(successful) else None
        ),
    }
    extra = getattr(attack, "extra_metrics", None)
    if extra is not None:
        metrics.update(extra())
    return AttackOutcome(per_example, metrics, time.perf_counter() - started, list(getattr(attack, "notes", [])))


def worst_case(per_example_frames: list[pd.DataFrame]) -> tuple[float, int]:
    """Per-example worst case over attacks: an example counts as robust only if every attack left
    it correctly classified. Frames must cover the same examples (same `index`)."""
    if not per_example_frames:
        return math.nan, 0
    merged = None
    for frame in per_example_frames:
        col = frame.set_index("index")["adv_correct"].astype(bool)
        merged = col if merged is None else (merged & col.reindex(merged.index, fill_value=False))
    return float(merged.mean()), int(len(merged))
