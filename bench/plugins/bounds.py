"""Sound bounds on a network's logits over a perturbation ball: interval bound propagation (IBP,
Gowal et al. 2018) and CROWN's backward linear relaxation (Zhang et al. 2018), written here because
auto_LiRPA's release on the package index (0.3) pins torch < 1.13 and does not import with torch 2.

Certification (bench/execute/certify.py) and certified training (defenses/certified.py) share it.
A model is first turned into a chain of `Op`s (`chain_of`): the normalization inside the
`Classifier`, then each layer of its body (Conv2d, Linear, ReLU, Flatten, MaxPool2d, AvgPool2d,
BatchNorm in eval mode, Dropout, Identity), then the deployment scale. Anything else (a plugin's
own layer, an input transform, a forward that is not a chain) raises `NotCertifiable` with the
reason: a finding, never a crash and never an unsound bound.

Bounds are on the margins m_j = z_y − z_j (j ≠ y); an example is certified when every lower bound
is > 0: no input in the ball changes the prediction away from the true class y.

- `ibp_margins`: intervals through every op (exact for monotone ops; ReLU and max-pooling are monotone).
- `crown_margins` (bench/plugins/linear_bounds.py): the margins as a linear function of the input, propagated backward through
  linear relaxations of ReLU (the upper line through (l, 0) and (u, u); the lower slope 1 where
  u > −l, else 0: CROWN's adaptive choice) and of max-pooling (exact where one input dominates its
  window, else the input with the largest lower bound below and the largest upper bound above),
  then concretized over the ball (L∞: ε·‖A‖₁; L2: ε·‖A‖₂, intersected with [0, 1] for L∞ only).
  The pre-activation bounds the relaxations need come from CROWN itself, layer by layer (`crown`,
  exact CROWN; memory grows with layer width × input size, so it is used where the network is
  small enough) or from IBP (`crown-ibp`, Zhang et al. 2020). The result is the elementwise maximum
  with IBP's bound: both are sound, so their maximum is, and it is never looser than IBP.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class NotCertifiable(Exception):
    """The model has a part these bounds cannot follow (the message says which)."""


@dataclass
class Op:
    """One step of the chain: kind in affine | conv | relu | flatten | maxpool | avgpool."""

    kind: str
    module: nn.Module | None = None
    weight: torch.Tensor | None = None  # affine: per-channel scale; linear/conv: the module's weight
    bias: torch.Tensor | None = None
    shape: tuple[int, ...] | None = None  # the output shape (without the batch), filled by `shapes`


def _per_channel(scale: torch.Tensor, shift: torch.Tensor) -> Op:
    return Op("affine", weight=scale.detach().view(1, -1, 1, 1), bias=shift.detach().view(1, -1, 1, 1))


def _layer_ops(module: nn.Module) -> list[Op]:
    if isinstance(module, nn.Sequential):
        return [op for child in module for op in _layer_ops(child)]
    if isinstance(module, nn.Linear):
        return [Op("linear", module, module.weight, module.bias)]
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise NotCertifiable(f"Conv2d with groups={module.groups}, padding {module.padding!r}")
        return [Op("conv", module, module.weight, module.bias)]
    if isinstance(module, nn.ReLU):
        return [Op("relu")]
    if isinstance(module, nn.Flatten):
        if module.start_dim != 1 or module.end_dim != -1:
            raise NotCertifiable("Flatten other than from dimension 1")
        return [Op("flatten")]
    if isinstance(module, (nn.Dropout, nn.Identity)):  # identity in eval mode
        return []
    if isinstance(module, nn.MaxPool2d):
        if module.kernel_size != module.stride or module.padding not in (0, (0, 0)) or module.dilation not in (1, (1, 1)):
            raise NotCertifiable("MaxPool2d with overlapping windows, padding or dilation")
        return [Op("maxpool", module)]
    if isinstance(module, nn.AvgPool2d):
        if module.kernel_size != module.stride or module.padding not in (0, (0, 0)):
            raise NotCertifiable("AvgPool2d with overlapping windows or padding")
        return [Op("avgpool", module)]
    if isinstance(module, nn.BatchNorm2d):
        if module.training or module.running_mean is None:  # batch statistics: not a fixed affine map
            raise NotCertifiable("BatchNorm2d in train mode or without running statistics")
        scale = module.weight / torch.sqrt(module.running_var + module.eps)
        return [_per_channel(scale, module.bias - module.running_mean * scale)]
    raise NotCertifiable(f"layer {type(module).__name__} is not one the bounds can follow")


def chain_of(model: nn.Module, *, training: bool = False) -> list[Op]:
    """The model as a chain of ops on [0, 1] inputs, or NotCertifiable with the reason. The ops share
    the model's parameters, so bounds are differentiable (certified training: `training=True`
    allows train mode, where dropout would not be the identity the chain assumes unless p = 0)."""
    if model.training and not training:
        raise NotCertifiable("the model is in train mode")
    if training and any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules()):
        raise NotCertifiable("dropout is active in train mode: the bounds assume the eval-mode forward")
    body = getattr(model, "body", None)
    if body is None or not all(hasattr(model, b) for b in ("mean", "std", "logit_scale")):
        raise NotCertifiable(f"{type(model).__name__} is not a Classifier (normalization, body, logit scale)")
    if getattr(model, "input_transform", None) is not None:
        raise NotCertifiable(f"the input transform {type(model.input_transform).__name__} is not a layer the bounds "
                             f"can follow (a non-differentiable or randomized preprocessing)")
    ops = [_per_channel(1 / model.std.flatten(), -model.mean.flatten() / model.std.flatten())]
    ops += _layer_ops(body)
    scale = float(model.logit_scale)
    ops.append(Op("affine", weight=torch.tensor(scale), bias=torch.tensor(0.0)))
    return ops


# --- forward: intervals -------------------------------------------------------------------------
def _affine_interval(op: Op, lo: torch.Tensor, hi: torch.Tensor):
    center, radius = (hi + lo) / 2, (hi - lo) / 2
    if op.kind == "affine":
        c, r = center * op.weight + op.bias, radius * op.weight.abs()
    elif op.kind == "linear":
        c, r = F.linear(center, op.weight, op.bias), F.linear(radius, op.weight.abs())
    else:
        m = op.module
        c = F.conv2d(center, op.weight, op.bias, m.stride, m.padding, m.dilation)
        r = F.conv2d(radius, op.weight.abs(), None, m.stride, m.padding, m.dilation)
    return c - r, c + r


def step(op: Op, lo: torch.Tensor, hi: torch.Tensor):
    if op.kind in ("affine", "linear", "conv"):
        return _affine_interval(op, lo, hi)
    if op.kind == "relu":
        return lo.clamp(min=0), hi.clamp(min=0)
    if op.kind == "flatten":
        return lo.flatten(1), hi.flatten(1)
    if op.kind == "maxpool":
        return op.module(lo), op.module(hi)
    if op.kind == "avgpool":
        return op.module(lo), op.module(hi)
    raise AssertionError(op.kind)


def ball(x: torch.Tensor, norm: str, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The box that holds the ball (intersected with [0, 1]): exact for L∞, the enclosing box for L2."""
    if norm not in ("linf", "l2"):
        raise NotCertifiable(f"no bound for the {norm} threat model (IBP and CROWN bound L∞ and L2 balls)")
    return (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)


def interval_bounds(ops: list[Op], x: torch.Tensor, norm: str, eps: float) -> list:
    """Lower and upper bounds of every op's output, from the ball around `x` (IBP). For L2 the
    leading affine ops (the normalization, the first convolution) are bounded on the ball itself
    (w·x₀ + b ± ε‖w‖₂), then intervals."""
    start = 0
    if norm == "l2":
        start = first_nonaffine(ops)
    out = [None] * start
    if start:
        out[start - 1] = _l2_affine_bounds(ops[:start], x, eps)
        lo, hi = out[start - 1]
    else:
        lo, hi = ball(x, norm, eps)
    for op in ops[start:]:
        lo, hi = step(op, lo, hi)
        out.append((lo, hi))
    return out


def _apply_affine(ops: list[Op], t: torch.Tensor, bias: bool) -> torch.Tensor:
    for op in ops:
        if op.kind == "affine":
            t = t * op.weight + (op.bias if bias else 0)
        elif op.kind == "linear":
            t = F.linear(t, op.weight, op.bias if bias else None)
        else:
            m = op.module
            t = F.conv2d(t, op.weight, op.bias if bias else None, m.stride, m.padding, m.dilation)
    return t


def _l2_affine_bounds(ops: list[Op], x: torch.Tensor, eps: float, block: int = 256):
    """Exact bounds of a chain of affine ops over an L2 ball: each output is w·x + b, so it lies in
    w·x₀ + b ± ε‖w‖₂; the row norms ‖w‖₂ come from pushing the input basis through the chain."""
    dims = math.prod(x.shape[1:])
    squares = None
    for start in range(0, dims, block):
        basis = torch.zeros(min(block, dims - start), dims, device=x.device, dtype=x.dtype)
        basis[torch.arange(len(basis)), torch.arange(start, start + len(basis))] = 1
        rows = _apply_affine(ops, basis.view(len(basis), *x.shape[1:]), bias=False)
        part = (rows ** 2).sum(0)
        squares = part if squares is None else squares + part
    center = _apply_affine(ops, x, bias=True)
    radius = eps * squares.sqrt().unsqueeze(0)
    return center - radius, center + radius


def first_nonaffine(ops) -> int:
    i = 0
    while i < len(ops) and ops[i].kind in ("affine", "linear", "conv"):
        i += 1
    return i


def margin_matrix(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C (N, K−1, K) with rows e_y − e_j for every j ≠ y: C·z are the margins."""
    eye = torch.eye(num_classes, device=y.device)
    rows = eye[y].unsqueeze(1) - eye.unsqueeze(0)  # (N, K, K): row j = e_y - e_j
    keep = torch.ones(len(y), num_classes, dtype=torch.bool, device=y.device)
    keep[torch.arange(len(y)), y] = False
    return rows[keep].view(len(y), num_classes - 1, num_classes)


def interval_margins(c: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    center, radius = (hi + lo) / 2, (hi - lo) / 2
    return torch.einsum("nkj,nj->nk", c, center) - torch.einsum("nkj,nj->nk", c.abs(), radius)


def ibp_margins(ops: list[Op], x: torch.Tensor, y: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Lower bounds (N, K−1) of the margins z_y − z_j by interval propagation."""
    lo, hi = interval_bounds(ops, x, norm, eps)[-1]
    return interval_margins(margin_matrix(y, lo.shape[1]), lo, hi)


def shapes_of(ops: list[Op], x: torch.Tensor) -> list[tuple[int, ...]]:
    out, t = [], x[:1]
    for op in ops:
        t = step(op, t, t)[0]
        out.append(tuple(t.shape[1:]))
    return out
