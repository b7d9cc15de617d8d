"""Model probes: cheap measurements of a model's outputs and input gradients that reveal the
mechanics of gradient masking, recorded per model and used by the masking diagnostics.

- zero_grad_share: inputs whose cross-entropy input gradient is exactly zero in float32
  (a saturated softmax: gradient attacks on CE have nothing to follow);
- zero_dlr_grad_share: inputs whose DLR-loss input gradient is exactly zero (AutoAttack's
  check_zero_gradients: DLR is invariant to the logits' scale, so a zero here is not saturation);
- saturated_share: inputs whose top softmax probability rounds to 1.0 in float32;
- logit_l1_median, top2_gap_median: the size of the logits (Carlini & Wagner 2016: ~482 for a
  distilled MNIST net vs ~5.8 undistilled) and the margin between the two largest;
- sensitivity: mean |∂(Σ_k Z_k)/∂x| over inputs and features (Mandal & Guo's measure);
- confidence_correct: mean top probability on correctly classified inputs (None without any);
- ce_grad_l1 quantiles: the distribution of per-example input-gradient magnitudes;
- grad_unavailable_share, grad_nonfinite_share: inputs with no autograd path from the input to the
  logits, or a NaN/inf input gradient (Pintor et al. 2022); measured, never a crash;
- randomized_share: inputs whose logits differ between repeated eval-mode forwards (a randomized
  defense; AutoAttack's check_randomized);
- loss_instability: Pintor et al. 2022's "unstable predictions" metric — the mean over inputs and
  100 random points near each of the relative change of the cross-entropy, |L(x) − L(x + u)| / |L(x)|
  with u uniform in [−r/2, r/2] per feature, r = 8/255 (their code's radius), capped at 1 as theirs;
  the first INSTABILITY_EXAMPLES inputs. A smooth deterministic model changes its loss little so near
  the input; a randomized one, or one whose loss surface is shattered at that scale, changes it by
  about its own size, and gradients computed there say little about where the loss goes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.core.specs import PROBE_VERSION


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Croce & Hein 2020's difference-of-logits ratio, per example (scale invariant)."""
    sorted_logits, _ = logits.sort(dim=1)
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return -(true - others) / (sorted_logits[:, -1] - sorted_logits[:, -3] + 1e-12)


def _dlr_gradient(model, xb, yb):
    if model(xb[:1]).shape[1] < 3:
        return None
    xg = xb.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            grad, = torch.autograd.grad(dlr_loss(model(xg), yb).sum(), xg, allow_unused=True)
    except RuntimeError:
        return None
    return grad


def _input_gradients(model, xb, yb):
    """(CE input gradient, Σ-logits input gradient, logits); gradients are None when the forward
    leaves the autograd graph."""
    xg = xb.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xg)
        try:
            ce_grad, = torch.autograd.grad(F.cross_entropy(logits, yb, reduction="sum"), xg, retain_graph=True,
                                           allow_unused=True)
            sum_grad, = torch.autograd.grad(logits.sum(), xg, allow_unused=True)
        except RuntimeError:  # the logits do not require grad at all
            ce_grad = sum_grad = None
    return ce_grad, sum_grad, logits.detach()


INSTABILITY_DRAWS = 100  # the reference's γ
INSTABILITY_RADIUS = 8 / 255  # the reference's radius: u ~ U(−r/2, r/2) per feature
INSTABILITY_EXAMPLES = 100


@torch.no_grad()
def loss_instability(model, x: torch.Tensor, y: torch.Tensor, draws: int = INSTABILITY_DRAWS,
                     radius: float = INSTABILITY_RADIUS, seed: int = 0) -> float | None:
    """Pintor et al. 2022's unstable-predictions metric on (x, y), in [0, 1]; None when a forward
    gives no finite loss. Points stay in [0, 1] (the harness's input domain; the reference does not
    clip). A zero reference loss divides by 1, as in the reference.

    Each input's mean relative change is capped at 1 *before* the mean over inputs (probes of
    version 5 on; version 4 capped only the mean). The relative change divides by the input's own
    loss, so on a model with huge logits one input near its boundary decided the model's value: the
    committed ta-chain (T 100, mnist-5k) had 97 of 100 losses exactly 0 and one of 0.0155 that
    points ±4/255 away raised to hundreds, a relative change of 330 on that input alone — the mean
    of 3.3 capped to 1.0, W6 fired, although its predictions flip on 0.5% of the draws. Capped per
    input it reads 0.010: one input can move the value by at most 1/n, while a randomized or
    quantized model, unstable on most inputs, still exceeds W6's threshold (input noise 0.73, 4-level
    quantization 0.37; tests/test_indicators.py)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    reference = F.cross_entropy(model(x).float(), y, reduction="none")
    if not torch.isfinite(reference).all():
        return None
    scale = reference.abs().masked_fill(reference == 0, 1.0)
    total = torch.zeros_like(reference)
    for _ in range(draws):
        u = (torch.rand(x.shape, generator=gen) - 0.5).to(x.device) * radius
        loss = F.cross_entropy(model((x + u).clamp(0, 1)).float(), y, reduction="none")
        if not torch.isfinite(loss).all():
            return None
        total += (reference - loss).abs() / scale
    return float((total / draws).clamp(max=1.0).mean().item())


def probe_model(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                batch_size: int = 500) -> dict:
    model.eval()
    zero, zero_dlr, saturated, correct, unavailable, nonfinite, random = [], [], [], [], [], [], []
    logit_l1, gap, conf, sens, grad_l1 = [], [], [], [], []
    for start in range(0, len(y), batch_size):
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device)
        ce_grad, sum_grad, logits = _input_gradients(model, xb, yb)
        dlr_grad = _dlr_gradient(model, xb, yb)
        with torch.no_grad():
            zero_dlr.append(torch.zeros(len(yb), dtype=torch.bool, device=xb.device) if dlr_grad is None
                            else (dlr_grad.flatten(1).abs().amax(1) == 0))
            random.append((model(xb).float() != logits.float()).any(1))
            logits = logits.float()
            probs = F.softmax(logits, dim=1)
            top2 = logits.topk(2, dim=1).values
            missing = ce_grad is None
            flat = torch.zeros(len(yb), 1, device=xb.device) if missing else ce_grad.flatten(1).abs()
            finite = torch.isfinite(flat).all(1)
            unavailable.append(torch.full((len(yb),), missing, dtype=torch.bool, device=xb.device))
            nonfinite.append(~finite)
            zero.append((flat.amax(1) == 0) & finite & ~missing)
            saturated.append(probs.amax(1) == 1.0)
            correct.append(logits.argmax(1) == yb)
            logit_l1.append(logits.abs().sum(1))
            gap.append(top2[:, 0] - top2[:, 1])
            conf.append(probs.amax(1))
            sens.append(torch.zeros(len(yb), device=xb.device) if sum_grad is None
                        else torch.nan_to_num(sum_grad.flatten(1).abs().mean(1), nan=0.0, posinf=0.0))
            grad_l1.append(torch.nan_to_num(flat.sum(1), nan=0.0, posinf=0.0))
    cat = lambda parts: torch.cat(parts).cpu()
    correct_t, conf_t, grad_t = cat(correct), cat(conf), cat(grad_l1)
    quantiles = torch.quantile(grad_t.double(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    first = slice(0, min(INSTABILITY_EXAMPLES, len(y)))
    instability = loss_instability(model, x[first].to(device), y[first].to(device))
    return {
        "probe_version": PROBE_VERSION,
        "n": int(len(y)),
        "clean_acc": float(correct_t.float().mean()),
        "zero_grad_share": float(cat(zero).float().mean()),
        "zero_dlr_grad_share": float(cat(zero_dlr).float().mean()),
        "grad_unavailable_share": float(cat(unavailable).float().mean()),
        "grad_nonfinite_share": float(cat(nonfinite).float().mean()),
        "randomized_share": float(cat(random).float().mean()),
        "loss_instability": instability,
        "saturated_share": float(cat(saturated).float().mean()),
        "logit_l1_median": float(cat(logit_l1).median()),
        "top2_gap_median": float(cat(gap).median()),
        "sensitivity": float(cat(sens).mean()),
        # None (JSON null), never NaN, when nothing is classified right: such a model is probed and evaluated
        "confidence_correct": float(conf_t[correct_t].mean()) if correct_t.any() else None,
        "ce_grad_l1": {"q10": float(quantiles[0]), "median": float(quantiles[1]), "q90": float(quantiles[2])},
        "ce_grad_l1_per_example": [float(v) for v in grad_t],
    }
