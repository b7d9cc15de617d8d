"""The one training loop every defense uses: seeded, device-aware, with a progress bar.

A defense supplies the loss (`loss_fn(model, x, y) -> (loss, logits)`), so the loop stays the
same for plain cross-entropy, distillation, and adversarial training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]

SCHEDULES = ("constant", "cosine", "multistep")


OPTIMIZERS = ("sgd", "adam")


MAX_EPOCHS = 100_000  # beyond this a value is a typo, not a training budget


@dataclass(frozen=True)
class Optim:
    """SGD with momentum, or Adam, and one of a few standard schedules."""

    epochs: int
    lr: float
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    batch_size: int = 128
    schedule: str = "constant"  # "multistep": x0.1 at each milestone (Madry/TRADES style: 50% and 75%)
    optimizer: str = "sgd"
    milestones: tuple[float, ...] = (0.5, 0.75)  # "multistep": where the rate drops, as shares of training

    def __post_init__(self):
        from bench.core.errors import BenchInputError

        if self.optimizer not in OPTIMIZERS:
            raise BenchInputError(f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise BenchInputError(f"unknown schedule {self.schedule!r}; allowed: {', '.join(SCHEDULES)}")
        for name in ("epochs", "lr", "batch_size"):
            if not getattr(self, name) > 0:
                raise BenchInputError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("momentum", "weight_decay"):
            if not 0 <= getattr(self, name) < 1e3:
                raise BenchInputError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        if self.epochs > MAX_EPOCHS:
            raise BenchInputError(f"epochs must be at most {MAX_EPOCHS:,}, got {self.epochs!r}")

    def build(self, params) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


def _lr_at(optim: Optim, progress: float) -> float:
    if optim.schedule == "cosine":
        return optim.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if optim.schedule == "multistep":
        return optim.lr * (0.1 ** sum(progress >= m for m in optim.milestones))
    return optim.lr


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    optim: Optim,
    *,
    device: torch.device,
    seed: int,
    desc: str = "train",
    quiet: bool = False,
    extra: torch.Tensor | None = None,
) -> nn.Module:
    """Train `model` in place on (x, y) and return it in eval mode.

    `extra` (optional, aligned with x) is passed to the loss as a third target, e.g. the teacher's
    precomputed soft labels; then `loss_fn(model, x, y, extra_batch)`.
    """
    model.to(device).train()
    opt = optim.build(model.parameters())
    order_rng = torch.Generator().manual_seed(seed)
    # the data lives on the device for the whole fit (no host-to-device copy per step), and the
    # loop never waits for the device inside an epoch: loss, accuracy and the finiteness check are
    # accumulated as device tensors and read once per epoch (one synchronisation per epoch)
    x, y = x.to(device), y.to(device)
    extra = extra.to(device) if extra is not None else None
    n = len(y)
    steps_per_epoch = math.ceil(n / optim.batch_size)
    total = optim.epochs * steps_per_epoch
    bar = tqdm(total=total, desc=desc, disable=True if quiet else None, unit="batch", leave=False, dynamic_ncols=True)
    step = 0
    for epoch in range(optim.epochs):
        perm = torch.randperm(n, generator=order_rng).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        finite = torch.ones((), device=device, dtype=torch.bool)
        for start in range(0, n, optim.batch_size):
            idx = perm[start : start + optim.batch_size]
            xb, yb = x[idx], y[idx]
            for group in opt.param_groups:
                group["lr"] = _lr_at(optim, step / total)
            if extra is None:
                loss, logits = loss_fn(model, xb, yb)
            else:
                loss, logits = loss_fn(model, xb, yb, extra[idx])
            finite &= torch.isfinite(loss.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(1) == yb).sum()
            bar.update(1)
        if not bool(finite):
            raise FloatingPointError(f"{desc}: the loss became non-finite during epoch {epoch + 1}")
        bar.set_postfix(epoch=f"{epoch + 1}/{optim.epochs}", loss=f"{loss_sum.item() / n:.4f}",
                        acc=f"{correct.item() / n:.3f}")
    bar.close()
    return model.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 1000) -> torch.Tensor:
    """Logits of `model` on x, in eval mode, batched, returned on the CPU."""
    model.eval()
    outs = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)
