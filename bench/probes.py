"""Model probes: cheap measurements of a model's outputs and input gradients that reveal the
mechanics of gradient masking, recorded per model and used by the masking diagnostics.

- zero_grad_share: inputs whose cross-entropy input gradient is exactly zero in float32
  (a saturated softmax: gradient attacks on CE have nothing to follow);
- saturated_share: inputs whose top softmax probability rounds to 1.0 in float32;
- logit_l1_median, top2_gap_median: the size of the logits (Carlini & Wagner 2016: ~482 for a
  distilled MNIST net vs ~5.8 undistilled) and the margin between the two largest;
- sensitivity: mean |∂(Σ_k Z_k)/∂x| over inputs and features (Mandal & Guo's measure);
- confidence_correct: mean top probability on correctly classified inputs;
- ce_grad_l1 quantiles: the distribution of per-example input-gradient magnitudes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PROBE_VERSION = 1


def probe_model(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                batch_size: int = 500) -> dict:
    model.eval()
    zero, saturated, correct = [], [], []
    logit_l1, gap, conf, sens, grad_l1 = [], [], [], [], []
    for start in range(0, len(y), batch_size):
        xb = x[start : start + batch_size].to(device).requires_grad_(True)
        yb = y[start : start + batch_size].to(device)
        logits = model(xb)
        ce_grad, = torch.autograd.grad(F.cross_entropy(logits, yb, reduction="sum"), xb, retain_graph=True)
        sum_grad, = torch.autograd.grad(logits.sum(), xb)
        with torch.no_grad():
            logits = logits.float()
            probs = F.softmax(logits, dim=1)
            top2 = logits.topk(2, dim=1).values
            flat = ce_grad.flatten(1).abs()
            zero.append(flat.amax(1) == 0)
            saturated.append(probs.amax(1) == 1.0)
            correct.append(logits.argmax(1) == yb)
            logit_l1.append(logits.abs().sum(1))
            gap.append(top2[:, 0] - top2[:, 1])
            conf.append(probs.amax(1))
            sens.append(sum_grad.flatten(1).abs().mean(1))
            grad_l1.append(flat.sum(1))
    cat = lambda parts: torch.cat(parts).cpu()
    correct_t, conf_t, grad_t = cat(correct), cat(conf), cat(grad_l1)
    quantiles = torch.quantile(grad_t.double(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    return {
        "probe_version": PROBE_VERSION,
        "n": int(len(y)),
        "clean_acc": float(correct_t.float().mean()),
        "zero_grad_share": float(cat(zero).float().mean()),
        "saturated_share": float(cat(saturated).float().mean()),
        "logit_l1_median": float(cat(logit_l1).median()),
        "top2_gap_median": float(cat(gap).median()),
        "sensitivity": float(cat(sens).mean()),
        "confidence_correct": float(conf_t[correct_t].mean()) if correct_t.any() else float("nan"),
        "ce_grad_l1": {"q10": float(quantiles[0]), "median": float(quantiles[1]), "q90": float(quantiles[2])},
        "ce_grad_l1_per_example": [float(v) for v in grad_t],
    }
