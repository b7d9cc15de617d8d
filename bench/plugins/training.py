"""The one training loop every defense uses: seeded, device-aware, with a progress bar and a
training curve measured on the validation split.

A defense supplies the loss (`loss_fn(model, x, y) -> (loss, logits)`), so the loop stays the
same for plain cross-entropy, distillation, and adversarial training. Every epoch the loop records
the training loss and accuracy and the validation loss and clean accuracy; a robust defense also
names its threat model (`Validation.attack`), and the loop then measures validation robust accuracy
with APGD-CE + APGD-T (bench/plugins/validation.py) every `every` epochs and keeps the epoch where
it was highest (early stopping against robust overfitting, Rice et al. 2020), or stops when it
collapses (the catastrophic-overfitting guard of fast adversarial training, Wong et al. 2020).
The curve is stored in the model's sealed spec.json (inside its hash) and drawn on its page.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]

SCHEDULES = ("constant", "cosine", "multistep", "cyclic")


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


@dataclass(frozen=True)
class Validation:
    """What `fit` measures on the validation split (x, y) and how it picks the returned epoch.

    attack: the threat model to measure robust accuracy under (None: clean accuracy only, no
    selection). every: robust accuracy every that many epochs (and at the last). select_from: the
    first epoch (1-based) eligible for selection, e.g. after an ε ramp. stop_drop: stop when
    robust accuracy falls this far (a share) below its best (None: never)."""

    x: "torch.Tensor"
    y: "torch.Tensor"
    num_classes: int
    attack: object | None = None  # a bench.plugins.validation.ValidationAttack
    every: int = 1
    select: bool = True
    select_from: int = 1
    stop_drop: float | None = None


@dataclass
class TrainingCurve:
    """Per epoch: lr, train loss/accuracy, validation loss/clean accuracy, validation robust
    accuracy (None on epochs where it was not measured), seconds since the start."""

    validation_n: int
    attack: str | None
    epochs: list[dict] = field(default_factory=list)
    selected_epoch: int | None = None
    selection: str = "last epoch"
    stopped_early: str | None = None

    def to_json(self) -> dict:
        return {"validation_n": self.validation_n, "attack": self.attack, "selection": self.selection,
                "selected_epoch": self.selected_epoch, "stopped_early": self.stopped_early, "epochs": self.epochs}


def auto_every(epochs: int) -> int:
    """Robust validation about 20 times per training (each costs about a third of a PGD-10 epoch)."""
    return max(1, epochs // 20)


@torch.no_grad()
def _clean_metrics(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    losses, correct = [], 0
    for i in range(0, len(y), 1000):
        logits = model(x[i : i + 1000])
        losses.append(torch.nn.functional.cross_entropy(logits, y[i : i + 1000], reduction="sum"))
        correct += int((logits.argmax(1) == y[i : i + 1000]).sum())
    model.train(was_training)
    return float(sum(losses)) / max(1, len(y)), correct / max(1, len(y))


def _lr_at(optim: Optim, progress: float) -> float:
    if optim.schedule == "cosine":
        return optim.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if optim.schedule == "cyclic":  # Wong et al. 2020 (fast AT): 0 → lr over the first 40%, back to 0 at the end
        return optim.lr * (progress / 0.4 if progress < 0.4 else max(0.0, (1 - progress) / 0.6))
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
    validation: Validation | None = None,
    curve: TrainingCurve | None = None,
    replays: int = 1,
) -> nn.Module:
    """Train `model` in place on (x, y) and return it in eval mode.

    `extra` (optional, aligned with x) is passed to the loss as a third target, e.g. the teacher's
    precomputed soft labels; then `loss_fn(model, x, y, extra_batch)`. With `validation`, each
    epoch is appended to `curve`, and with a validation attack and `select`, the weights of the
    epoch of highest validation robust accuracy are the ones returned. `replays` > 1: each batch is
    given to the loss that many times in a row, an optimizer step each ("free" adversarial training,
    Shafahi et al. 2019, whose loss keeps its perturbation between the replays).
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
    steps_per_epoch = math.ceil(n / optim.batch_size) * replays
    total = optim.epochs * steps_per_epoch
    bar = tqdm(total=total // replays, desc=desc, disable=True if quiet else None, unit="batch", leave=False, dynamic_ncols=True)
    step = 0
    t0 = time.perf_counter()
    best: tuple[float, int, dict] | None = None  # (validation robust accuracy, epoch, weights)
    if validation is not None:
        xv, yv = validation.x.to(device), validation.y.to(device)
    for epoch in range(optim.epochs):
        perm = torch.randperm(n, generator=order_rng).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        finite = torch.ones((), device=device, dtype=torch.bool)
        for start in range(0, n, optim.batch_size):
            idx = perm[start : start + optim.batch_size]
            xb, yb = x[idx], y[idx]
            for _ in range(replays):
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
        if validation is None:
            continue
        row = {"epoch": epoch + 1, "lr": _lr_at(optim, step / total), "train_loss": loss_sum.item() / n,
               "train_acc": correct.item() / n}
        row["val_loss"], row["val_clean_acc"] = _clean_metrics(model, xv, yv)
        row["val_robust_acc"] = None
        last = epoch + 1 == optim.epochs
        if validation.attack is not None and ((epoch + 1) % validation.every == 0 or last):
            robust = validation.attack.robust_correct(model, xv, yv, seed=seed + epoch,
                                                      num_classes=validation.num_classes)
            row["val_robust_acc"] = float(robust.float().mean())
            if validation.select and epoch + 1 >= validation.select_from and (
                    best is None or row["val_robust_acc"] > best[0]):
                best = (row["val_robust_acc"], epoch + 1,
                        {k: v.detach().clone() for k, v in model.state_dict().items()})
        row["seconds"] = time.perf_counter() - t0
        if curve is not None:
            curve.epochs.append(row)
        if (validation.stop_drop is not None and best is not None and row["val_robust_acc"] is not None
                and row["val_robust_acc"] < best[0] - validation.stop_drop):
            if curve is not None:
                curve.stopped_early = (f"epoch {epoch + 1}: validation robust accuracy {row['val_robust_acc']:.3f} "
                                       f"fell more than {validation.stop_drop:g} below its best {best[0]:.3f} "
                                       f"(epoch {best[1]}): catastrophic overfitting")
            break
    bar.close()
    if best is not None:
        model.load_state_dict(best[2])
        if curve is not None:
            curve.selected_epoch, curve.selection = best[1], "highest validation robust accuracy (Rice et al. 2020)"
    elif curve is not None and curve.epochs:
        curve.selected_epoch = curve.epochs[-1]["epoch"]
    return model.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 1000) -> torch.Tensor:
    """Logits of `model` on x, in eval mode, batched, returned on the CPU."""
    model.eval()
    outs = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)
