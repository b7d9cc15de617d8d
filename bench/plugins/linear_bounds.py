"""CROWN's backward linear relaxation (Zhang et al. 2018) over the chain of ops of
bench/plugins/bounds.py: the margins (or a layer's neurons) as linear functions of the input,
propagated back through linear relaxations of ReLU and max-pooling, then bounded over the ball.

ReLU: the upper line through (l, 0) and (u, u); the lower slope 1 where u > −l, else 0 (CROWN's
adaptive choice); stable neurons exact. Max-pooling (non-overlapping windows): exact where one
input's lower bound is at least every other input's upper bound; otherwise y ≥ the input with the
largest lower bound and y ≤ the largest upper bound. Concretization: L∞ over the box
[x − ε, x + ε] ∩ [0, 1]; L2 as A·x₀ − ε‖A‖₂ (the ball, not intersected with [0, 1]: looser, sound).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bench.plugins.bounds import (Op, first_nonaffine, interval_margins, step, ball, interval_bounds,
                                  margin_matrix, shapes_of)


# --- backward: linear relaxations ----------------------------------------------------------------
def _relu_relaxation(lo: torch.Tensor, hi: torch.Tensor):
    """(upper slope, upper intercept, lower slope) per neuron; stable neurons are exact."""
    unstable = (lo < 0) & (hi > 0)
    denom = (hi - lo).clamp(min=1e-12)
    up_slope = torch.where(hi <= 0, torch.zeros_like(hi), torch.where(unstable, hi / denom, torch.ones_like(hi)))
    up_int = torch.where(unstable, -lo * hi / denom, torch.zeros_like(hi))
    low_slope = torch.where(hi <= 0, torch.zeros_like(hi),
                            torch.where(unstable, (hi > -lo).to(hi.dtype), torch.ones_like(hi)))
    return up_slope, up_int, low_slope


def _back_affine(op: Op, a: torch.Tensor, in_shape: tuple[int, ...]):
    """A (N, S, *out) → A·op as (A', constant (N, S)) for the op's input (N, S, *in)."""
    n, s = a.shape[:2]
    if op.kind == "affine":
        w = op.weight.expand(1, *in_shape) if op.weight.dim() else op.weight
        const = (a * op.bias).flatten(2).sum(2) if op.bias.dim() else a.flatten(2).sum(2) * op.bias
        return a * w, const
    if op.kind == "linear":
        const = a @ op.bias if op.bias is not None else a.new_zeros(n, s)
        return a @ op.weight, const
    m = op.module
    flat = a.reshape(n * s, *a.shape[2:])
    out_h, out_w = a.shape[-2:]
    pad_h = in_shape[1] - ((out_h - 1) * m.stride[0] - 2 * m.padding[0] + m.dilation[0] * (m.kernel_size[0] - 1) + 1)
    pad_w = in_shape[2] - ((out_w - 1) * m.stride[1] - 2 * m.padding[1] + m.dilation[1] * (m.kernel_size[1] - 1) + 1)
    back = F.conv_transpose2d(flat, op.weight, None, m.stride, m.padding, (pad_h, pad_w), 1, m.dilation)
    const = (a.sum((3, 4)) * op.bias).sum(2) if op.bias is not None else a.new_zeros(n, s)
    return back.view(n, s, *in_shape), const


def _windows(t: torch.Tensor, k: int) -> torch.Tensor:
    """(N, C, H, W) → (N, C, H/k, W/k, k·k): the pooling windows (H, W cropped to multiples of k)."""
    n, c, h, w = t.shape
    t = t[:, :, : h // k * k, : w // k * k]
    return t.reshape(n, c, h // k, k, w // k, k).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, k * k)


def _back_maxpool(op: Op, a: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, in_shape):
    """Relax y = max over each window: lower y ≥ x_i* (i* the largest lower bound), upper y ≤ the
    largest upper bound (a constant), exact where x_i*'s lower bound is ≥ every other upper bound."""
    k = op.module.kernel_size if isinstance(op.module.kernel_size, int) else op.module.kernel_size[0]
    wl, wh = _windows(lo, k), _windows(hi, k)  # (N, C, h, w, kk)
    best = wl.argmax(-1)
    best_lo = wl.max(-1).values
    others_hi = wh.scatter(-1, best.unsqueeze(-1), float("-inf")).max(-1).values
    exact = (best_lo >= others_hi).unsqueeze(1)  # broadcast over the specs
    upper_const = wh.max(-1).values.unsqueeze(1)
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    # lower bound of A·y: positive coefficients take y ≥ x_best; negative take y ≤ upper (or x_best if exact)
    coef_best = pos + torch.where(exact, neg, torch.zeros_like(neg))
    const = (torch.where(exact, torch.zeros_like(neg), neg) * upper_const).flatten(2).sum(2)
    n, s = a.shape[:2]
    c, h, w = a.shape[2:]
    onehot = F.one_hot(best, k * k).to(a.dtype)  # (N, C, h, w, kk)
    spread = coef_best.unsqueeze(-1) * onehot.unsqueeze(1)  # (N, S, C, h, w, kk)
    spread = spread.view(n, s, c, h, w, k, k).permute(0, 1, 2, 3, 5, 4, 6).reshape(n, s, c, h * k, w * k)
    back = a.new_zeros(n, s, *in_shape)
    back[..., : h * k, : w * k] = spread
    return back, const


def _backward(ops: list[Op], a: torch.Tensor, bounds: list, shapes: list, x: torch.Tensor, norm: str, eps: float):
    """Lower bound of A·(output of ops) over the ball: propagate A back to the input, concretize."""
    const = a.new_zeros(a.shape[:2])
    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        in_shape = shapes[i - 1] if i > 0 else tuple(x.shape[1:])
        if op.kind in ("affine", "linear", "conv"):
            a, c = _back_affine(op, a, in_shape)
            const = const + c
        elif op.kind == "relu":
            lo, hi = bounds[i - 1]
            up_s, up_i, low_s = _relu_relaxation(lo, hi)
            pos, neg = a.clamp(min=0), a.clamp(max=0)
            const = const + (neg * up_i.unsqueeze(1)).flatten(2).sum(2)
            a = pos * low_s.unsqueeze(1) + neg * up_s.unsqueeze(1)
        elif op.kind == "flatten":
            a = a.reshape(*a.shape[:2], *in_shape)
        elif op.kind == "maxpool":
            lo, hi = bounds[i - 1] if i > 0 else ball(x, norm, eps)
            a, c = _back_maxpool(op, a, lo, hi, in_shape)
            const = const + c
        elif op.kind == "avgpool":
            m = op.module
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            up = a.repeat_interleave(k, -1).repeat_interleave(k, -2) / (k * k)
            back = a.new_zeros(*a.shape[:2], *in_shape)
            back[..., : up.shape[-2], : up.shape[-1]] = up
            a = back
        else:
            raise AssertionError(op.kind)
    flat = a.flatten(2)
    x0 = x.flatten(1).unsqueeze(1)
    if norm == "linf":
        lo, hi = ball(x, norm, eps)
        lo, hi = lo.flatten(1).unsqueeze(1), hi.flatten(1).unsqueeze(1)
        return (flat.clamp(min=0) * lo + flat.clamp(max=0) * hi).sum(2) + const
    return (flat * x0).sum(2) - eps * flat.norm(dim=2) + const


def crown_layer_bounds(ops, k: int, x, norm, eps, bounds, budget: int = 2 ** 24):
    """Bounds of op k−1's output (the input of op k) by backward CROWN: one identity spec per
    neuron, in chunks whose coefficient tensors hold at most `budget` floats."""
    shapes = shapes_of(ops[:k], x)
    shape = shapes[-1]
    size = math.prod(shape)
    n = len(x)
    widest = max([math.prod(s) for s in shapes] + [math.prod(x.shape[1:])])
    chunk = max(1, budget // (n * widest))
    lows, highs = [], []
    for start in range(0, size, chunk):
        idx = torch.arange(start, min(size, start + chunk), device=x.device)
        eye = torch.zeros(len(idx), size, device=x.device, dtype=x.dtype)
        eye[torch.arange(len(idx)), idx] = 1
        spec = eye.view(1, len(idx), *shape).expand(n, -1, *shape)
        lows.append(_backward(ops[:k], spec, bounds, shapes, x, norm, eps))
        highs.append(-_backward(ops[:k], -spec, bounds, shapes, x, norm, eps))
    return torch.cat(lows, 1).view(n, *shape), torch.cat(highs, 1).view(n, *shape)


# Full CROWN bounds a layer's pre-activations by a backward pass per neuron: its cost grows with the
# layer's width times the size of everything below it. Above this many neuron × input-size products
# a layer keeps its IBP bounds (CROWN-IBP for that layer); the record says how many layers were which.
FULL_CROWN_LIMIT = 2 * 10 ** 8


def crown_margins(ops: list[Op], x: torch.Tensor, y: torch.Tensor, norm: str, eps: float, *,
                  full_limit: int = FULL_CROWN_LIMIT) -> tuple[torch.Tensor, dict]:
    """Lower bounds (N, K−1) of the margins by CROWN's backward relaxation, never looser than IBP,
    and what was done: {"crown_layers": k, "ibp_layers": m} (pre-activation bounds by CROWN or IBP)."""
    shapes = shapes_of(ops, x)
    bounds = interval_bounds(ops, x, norm, eps)
    done = {"crown_layers": 0, "ibp_layers": 0}
    below = math.prod(x.shape[1:])
    exact_upto = first_nonaffine(ops)  # bounds after the leading affine ops are exact already
    for i, op in enumerate(ops):
        if (op.kind in ("relu", "maxpool") and i > exact_upto and ops[i - 1].kind in ("affine", "linear", "conv")):
            width = math.prod(shapes[i - 1])
            if width * below <= full_limit:
                lo, hi = crown_layer_bounds(ops, i, x, norm, eps, bounds)
                bounds[i - 1] = _tighten(bounds[i - 1], (lo, hi))
                for j in range(i, len(ops)):  # the ops above see the tighter interval
                    bounds[j] = _tighten(bounds[j], step(ops[j], *bounds[j - 1]))
                done["crown_layers"] += 1
            else:
                done["ibp_layers"] += 1
        if i < len(shapes):
            below += math.prod(shapes[i])
    c = margin_matrix(y, shapes[-1][0])
    crown = _backward(ops, c, bounds, shapes, x, norm, eps)
    lo, hi = bounds[-1]
    return torch.maximum(crown, interval_margins(c, lo, hi)), done


def _tighten(old, new):
    return torch.maximum(old[0], new[0]), torch.minimum(old[1], new[1])
