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

from bench.plugins.attacks.base import Attack
from bench.core.errors import AttackContractError
from bench.execute.guards import _adapter_copy, _check_forward_unchanged, _check_model_unchanged, _hook_signature
from bench.execute.observer import TRACE_COLUMNS, QueryObserver, adopt_queried, perturbation_size
from bench.core.specs import Budget
from bench.plugins.training import predict_logits

# Float rounding slack when checking a budget: x + eps clipped to [0, 1] can land a few ulps over.
_ABS_TOL = 1e-6
_REL_TOL = 1e-5


def check_adversarial(attack: Attack, x: torch.Tensor, x_adv: torch.Tensor,
                      budget: Budget) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate an adapter's output. Returns (sizes, within_budget, stray) per example; `stray`
    marks minimal-norm outputs beyond the budget that are nearer another input than their own.

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
    stray = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    if attack.minimal_norm and len(x) > 1:
        # a minimal-norm output beyond the budget is only a "success at some size" if it is still an
        # image of its own input: one nearer another input of the batch is not counted (an adapter that
        # reorders the batch would otherwise report other classes' images as successes); most outputs
        # out of place is an adapter defect
        dist = torch.cdist(x_adv.flatten(1).double(), x.flatten(1).double())
        own = dist.diagonal().clone()
        dist.fill_diagonal_(float("inf"))
        stray = (dist.min(1).values < own) & ~within
        if stray.float().mean() > 0.5:
            raise AttackContractError(
                f"attack {name!r} returned {int(stray.sum())} of {len(x)} examples nearer to another input of the "
                f"batch than to their own (outputs out of order?); result refused")
    return sizes, within, stray


@dataclass
class AttackOutcome:
    per_example: pd.DataFrame
    metrics: dict
    wall_seconds: float
    notes: list[str]  # what the attack itself reported (e.g. AutoAttack's sanity-check warnings)


# Per-example input-gradient status (Pintor et al. 2022, "unavailable gradients"): a model's
# pathology, recorded and worked around, never a crash.
GRADIENT_OK, GRADIENT_ZERO, GRADIENT_NONFINITE, GRADIENT_UNAVAILABLE = "ok", "zero", "nonfinite", "unavailable"
DEFAULT_DRAWS = 10  # forward passes per example when the model is randomized


def gradient_status(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[str]:
    """For each example: is the cross-entropy input gradient available, finite, non-zero?
    Unavailable when the forward leaves the autograd graph (a NumPy round trip, `(x > 0.5).float()`)."""
    import torch.nn.functional as F

    xg = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(xg), y, reduction="sum")
            grad, = torch.autograd.grad(loss, xg, allow_unused=True)
    except RuntimeError:  # the output does not require grad at all
        return [GRADIENT_UNAVAILABLE] * len(x)
    if grad is None:
        return [GRADIENT_UNAVAILABLE] * len(x)
    flat = grad.detach().flatten(1)
    finite = torch.isfinite(flat).all(1)
    zero = (flat == 0).all(1)
    return [GRADIENT_OK if f and not z else (GRADIENT_ZERO if f else GRADIENT_NONFINITE)
            for f, z in zip(finite.tolist(), zero.tolist())]


def is_randomized(model: torch.nn.Module, x: torch.Tensor, tries: int = 3) -> bool:
    """Do repeated eval-mode forwards of the same inputs disagree (AutoAttack's check_randomized)?"""
    with torch.no_grad():
        first = model(x)
        return any(not torch.equal(first, model(x)) for _ in range(tries - 1))


def predict_draws(model: torch.nn.Module, x: torch.Tensor, device: torch.device, draws: int) -> torch.Tensor:
    """Predicted labels of `draws` forward passes, shape (draws, N), on the CPU."""
    with torch.no_grad():
        return torch.stack([predict_logits(model, x, device).argmax(1) for _ in range(draws)])


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
    draws: int = DEFAULT_DRAWS,
    surrogate: torch.nn.Module | None = None,
) -> AttackOutcome:
    """Attack the correctly classified examples of (x, y) and measure the outcome per example.

    A randomized model is predicted `draws` times: an example counts as correct only if it is
    correct in every draw (the expected accuracy over draws is recorded beside it). For gradient
    attacks, examples whose input gradient is unavailable get the clean input back (the attack is
    skipped for them, with a note); a non-finite output is accepted as the clean input where the
    model's own gradient is not finite, and refused as an adapter defect anywhere else.

    `surrogate`: the model a transfer attack crafts on. The adapter gets a copy of it; the harness
    predicts every returned point on the original too (column `surrogate_fooled`: the point fooled
    the surrogate, inside the budget), for the transfer-failure indicator (bench/assess/indicators.py)."""
    started = time.perf_counter()
    model.eval()
    notes: list[str] = []
    randomized = is_randomized(model, x[: min(len(x), 100)].to(device))
    k = draws if randomized else 1
    clean_draws = predict_draws(model, x, device, k)
    clean_correct = (clean_draws == y).all(0)
    clean_pred = clean_draws[0]
    if randomized:
        notes.append(f"model is randomized (repeated eval-mode forwards disagree): accuracies count an example as "
                     f"correct only if correct in all {k} draws")
    adv_draws = clean_draws.clone()
    sizes = torch.full((len(y),), float("nan"))
    within = torch.ones(len(y), dtype=torch.bool)
    stray = torch.zeros(len(y), dtype=torch.bool)
    grad_status = [GRADIENT_OK] * len(y)
    uses_gradient = attack.uses_input_gradient() if hasattr(attack, "uses_input_gradient") else True
    generator = torch.Generator().manual_seed(seed)
    todo = clean_correct.nonzero().squeeze(1)
    bar = tqdm(total=len(todo), desc=desc or f"{attack.name} {budget}", disable=True if quiet else None, unit="ex", leave=False,
               dynamic_ncols=True)
    # A frozen copy of every parameter and buffer: after each adapter call the model must be exactly
    # what it was (a copy, not a checksum: exact, and cheap next to one attack batch).
    frozen = {k: v.detach().clone() for k, v in model.state_dict().items()}
    skipped = nonfinite_replaced = 0
    adapter_columns: dict[str, list] = {}  # what an adapter reports per example (e.g. AutoAttack's broken_by)
    silent = torch.zeros(len(y), dtype=torch.bool)
    traces = {c: torch.full((len(y),), float("nan")) for c in TRACE_COLUMNS}
    traces["trace_queries"] = torch.zeros(len(y), dtype=torch.long)
    surrogate_fooled = None
    if surrogate is not None:
        surrogate.eval()
        attack.surrogate_model = _adapter_copy(surrogate)  # what the adapter does to it never reaches the judge
        surrogate_fooled = torch.zeros(len(y), dtype=torch.bool)
    for start in range(0, len(todo), batch_size):
        idx = todo[start : start + batch_size]
        observer = None
        xb, yb = x[idx].to(device), y[idx].to(device)
        status = gradient_status(model, xb, yb) if uses_gradient else [GRADIENT_OK] * len(idx)
        for i, st in zip(idx.tolist(), status):
            grad_status[i] = st
        if uses_gradient and all(st == GRADIENT_UNAVAILABLE for st in status):
            x_adv = xb.clone()  # nothing to follow: the attack is skipped, the examples stay clean
            skipped += len(idx)
        else:
            attacked = _adapter_copy(model)
            observer = QueryObserver(xb, yb, norm=budget.norm, eps=budget.eps, minimal_norm=attack.minimal_norm)
            handle = observer.attach(attacked)  # the harness's own view of every query (bench/execute/observer.py)
            try:
                hooks = _hook_signature(attacked)
                x_adv = attack.run(attacked, xb.clone(), yb.clone(), budget=budget, num_classes=num_classes,
                                   generator=generator)  # the adapter gets its own copy of the inputs and model
                _check_model_unchanged(attacked, frozen, attack.name)
                _check_forward_unchanged(attacked, hooks, attack.name)
            finally:
                handle.remove()
            for column, values in (getattr(attack, "last_per_example", None) or {}).items():
                if len(values) == len(idx):
                    slot = adapter_columns.setdefault(column, [""] * len(y))
                    for i, v in zip(idx.tolist(), values):
                        slot[i] = v
            if isinstance(x_adv, torch.Tensor) and x_adv.shape == xb.shape:
                bad_rows = ~torch.isfinite(x_adv.detach().flatten(1)).all(1).cpu()
                if bad_rows.any():
                    model_fault = torch.tensor([st == GRADIENT_NONFINITE for st in status])
                    if uses_gradient and bool(model_fault[bad_rows].all()):
                        x_adv = torch.where(bad_rows.to(x_adv.device).view(-1, *[1] * (xb.dim() - 1)), xb, x_adv)
                        nonfinite_replaced += int(bad_rows.sum())
                    # otherwise check_adversarial refuses the output: an adapter defect
        _check_model_unchanged(model, frozen, attack.name)
        size_b, within_b, stray_b = check_adversarial(attack, xb, x_adv, budget)
        draws_b = predict_draws(model, x_adv.detach().to(device, xb.dtype), device, k)
        if observer is not None:  # silent successes: an adversarial query where the returned point is not
            draws_b, size_b, within_b, stray_b, adopted = adopt_queried(
                observer, lambda p: predict_draws(model, p.to(device, xb.dtype), device, k), xb, yb, draws_b,
                size_b, within_b, stray_b)
            silent[idx] = adopted
            for column, values in observer.columns().items():
                traces[column][idx] = values.cpu().to(traces[column].dtype)
        if surrogate_fooled is not None:
            with torch.no_grad():
                on_surrogate = surrogate(x_adv.detach().to(device, xb.dtype)).argmax(1).cpu()
            surrogate_fooled[idx] = (on_surrogate != yb.cpu()) & within_b.cpu() & ~stray_b.cpu()
        adv_draws[:, idx] = draws_b
        sizes[idx] = size_b.cpu()
        within[idx] = within_b.cpu()
        stray[idx] = stray_b.cpu()
        bar.update(len(idx))
    bar.close()
    if skipped:
        notes.append(f"input gradient unavailable (no autograd path from the input to the logits) on {skipped} "
                     f"examples: {attack.name} was skipped for them (they count as robust here; the adaptive stage "
                     f"needs BPDA or gradient-free attacks)")
    if nonfinite_replaced:
        notes.append(f"the model's input gradient is not finite on {nonfinite_replaced} examples: {attack.name}'s "
                     f"non-finite output for them was replaced by the clean input")

    wrong = adv_draws != y
    adv_pred = adv_draws.gather(0, wrong.float().argmax(0, keepdim=True)).squeeze(0)  # a wrong draw, if any
    fooled_any_size = clean_correct & (adv_draws != y).any(0) & ~stray
    if silent.any():
        notes.append(f"silent success on {int(silent.sum())} examples (Pintor et al. 2022): the returned point was not "
                     f"adversarial, one of the attack's own queries was; the harness judged that query and counts it")
    if stray.any():
        notes.append(f"{int(stray.sum())} outputs beyond the budget were nearer another input than their own: "
                     f"not counted as successes at any size")
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
        "gradient": grad_status,
        "silent_success": silent.numpy(),
        **{column: values.numpy() for column, values in traces.items()},
        **({} if surrogate_fooled is None else {"surrogate_fooled": surrogate_fooled.numpy()}),
        **{f"adapter_{column}": values for column, values in sorted(adapter_columns.items())},
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
        "gradient_unavailable": sum(st == GRADIENT_UNAVAILABLE for st in grad_status),
        "gradient_nonfinite": sum(st == GRADIENT_NONFINITE for st in grad_status),
        "gradient_zero": sum(st == GRADIENT_ZERO for st in grad_status),
        "draws": k,
        "silent_success": int(silent.sum()),
        "traced": int((traces["trace_queries"] > 0).sum()),  # examples with queries the harness saw
    }
    if surrogate_fooled is not None:
        metrics["surrogate_fooled"] = int(surrogate_fooled.sum())
    if randomized:  # the expected accuracies over draws, beside the all-draws ones
        metrics["expected_clean_acc"] = float((clean_draws == y).float().mean())
        adv_ok = clean_correct & ((adv_draws == y) | ~within)
        metrics["expected_robust_acc"] = float(adv_ok.float().mean())
    extra = getattr(attack, "extra_metrics", None)
    if extra is not None:  # an adapter may add keys, never replace the harness's
        metrics.update({k_: v for k_, v in extra().items() if k_ not in metrics})
    notes += [n for n in getattr(attack, "notes", []) if n not in notes]
    return AttackOutcome(per_example, metrics, time.perf_counter() - started, notes)


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
