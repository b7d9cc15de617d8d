"""Architectures by name. Every model the harness builds is a `Classifier`: it takes inputs in
[0, 1], normalizes them itself, and returns logits at its deployment temperature.

Architectures are pluggable like defenses and attacks: a package registers an `ArchInfo` under the
entry-point group `distill_bench.archs`, so the store can rebuild a deployed model that has its own
forward. An architecture may put an `input_transform` in front of the network (in pixel space:
binarization, quantization, noise) and name its undefended `base` architecture (the transfer
attack's surrogate is trained on the base, not on the wrapper). A transform that is not
differentiable declares `approximation(x)`, the differentiable stand-in BPDA uses for the backward
pass (Athalye et al. 2018 §4.1); without one, BPDA uses the identity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from bench.core.errors import BenchInputError, unknown_name


class Classifier(nn.Module):
    """[0, 1] NCHW inputs → logits at deployment temperature.

    `mean`/`std` normalize inside the model (attacks and budgets live in pixel space), and
    `logit_scale` (= 1 / deployment temperature) is a buffer so it is saved with the weights:
    a defense that deploys at T != 1 folds its temperature in here.
    """

    def __init__(self, body: nn.Module, mean: Sequence[float], std: Sequence[float], logit_scale: float = 1.0,
                 input_transform: nn.Module | None = None):
        super().__init__()
        self.input_transform = input_transform
        self.body = body
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        return self.body((x - self.mean) / self.std) * self.logit_scale


def _papernot(in_ch: int, hw: int, num_classes: int, widths, fc: int, dropout: float,
              first_only: bool = False) -> nn.Module:
    """Papernot et al. 2016, Table 1: two blocks of two 3x3 valid convolutions and a 2x2 max-pool,
    then two fully connected layers. MNIST: 32,32,64,64 / FC 200; CIFAR: 64,64,128,128 / FC 256.
    `first_only`: dropout after the first dense layer only (the C&W / Mandal & Guo reference code)."""
    a, b = widths
    side = ((hw - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, a, 3), nn.ReLU(), nn.Conv2d(a, a, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(a, b, 3), nn.ReLU(), nn.Conv2d(b, b, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(b * side * side, fc), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(0.0 if first_only else dropout),
        nn.Linear(fc, num_classes),
    )


def _digits_cnn(in_ch: int, hw: int, num_classes: int, width: int = 1) -> nn.Module:
    """A small CNN sized for 8x8 inputs (scikit-learn digits); same-padding keeps the map useful."""
    side = hw // 4
    a, b, fc = 32 * width, 64 * width, 128 * width
    return nn.Sequential(
        nn.Conv2d(in_ch, a, 3, padding=1), nn.ReLU(), nn.Conv2d(a, a, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(b * side * side, fc), nn.ReLU(), nn.Linear(fc, num_classes),
    )


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18 (He et al. 2016): 3x3 stem, no max-pool, [2, 2, 2, 2] basic blocks.
    The student architecture of ARD (Goldblum et al. 2020) and most robust-distillation work."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))

    def forward(self, x):
        return self.head(self.layers(self.stem(x)))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) adapted to 32x32 inputs as in ARD's experiments: stride-1
    stem and first downsampling stage removed, so a 32x32 image ends at 4x4 before pooling."""

    # (expansion, out channels, repeats, first stride)
    STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__()
        layers = [nn.Conv2d(in_ch, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
        cin = 32
        for expansion, cout, repeats, stride in self.STAGES:
            for i in range(repeats):
                layers.append(_InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


@dataclass(frozen=True)
class ArchInfo:
    name: str
    description: str
    build: Callable[[int, int, int], nn.Module]  # (in_channels, height, num_classes) -> body
    min_side: int
    input_transform: Callable[[], nn.Module] | None = None  # pixel-space transform before the network
    base: str | None = None  # the undefended architecture this one wraps (transfer surrogate, references)
    larger: str | None = None  # a larger architecture of the same input family (a distillation teacher)


ARCHS: dict[str, ArchInfo] = {
    # No dropout, where the reference code of Carlini & Wagner and of the teacher-assistant seed
    # (Mandal & Guo) has Dropout(0.5) after the first dense layer: `papernot-mnist-dropout` is that
    # network; the departure is documented in docs/model-cards.md and on every model card.
    "papernot-mnist": ArchInfo(
        "papernot-mnist", "Papernot 2016 MNIST net: conv32-conv32-pool-conv64-conv64-pool-FC200-FC200",
        lambda c, hw, k: _papernot(c, hw, k, (32, 64), 200, 0.0), 28, larger="papernot-mnist-wide"),
    "papernot-mnist-dropout": ArchInfo(
        "papernot-mnist-dropout", "papernot-mnist with Dropout(0.5) after the first dense layer (C&W's and "
        "Mandal & Guo's reference code)", lambda c, hw, k: _papernot(c, hw, k, (32, 64), 200, 0.5, first_only=True),
        28, larger="papernot-mnist-wide"),
    "papernot-mnist-wide": ArchInfo(
        "papernot-mnist-wide", "papernot-mnist at twice the width: conv64-conv64-pool-conv128-conv128-pool-FC400-FC400 "
        "(a robust teacher larger than its student, as ARD distils)",
        lambda c, hw, k: _papernot(c, hw, k, (64, 128), 400, 0.0), 28),
    "papernot-cifar": ArchInfo(
        "papernot-cifar", "Papernot 2016 CIFAR net: conv64-conv64-pool-conv128-conv128-pool-FC256-FC256, dropout 0.5",
        lambda c, hw, k: _papernot(c, hw, k, (64, 128), 256, 0.5), 28, larger="resnet18"),
    "digits-cnn": ArchInfo("digits-cnn", "small CNN for 8x8 digits: conv32-conv32-pool-conv64-pool-FC128",
                           lambda c, hw, k: _digits_cnn(c, hw, k), 4, larger="digits-cnn-wide"),
    "digits-cnn-wide": ArchInfo("digits-cnn-wide", "digits-cnn at twice the width: conv64-conv64-pool-conv128-pool-FC256",
                                lambda c, hw, k: _digits_cnn(c, hw, k, 2), 4),
    "resnet18": ArchInfo("resnet18", "CIFAR-style ResNet-18 (3x3 stem, no max-pool)",
                         lambda c, hw, k: ResNet18(c, k), 8),
    "mobilenetv2": ArchInfo("mobilenetv2", "MobileNetV2 adapted to 32x32 inputs (ARD's student)",
                            lambda c, hw, k: MobileNetV2(c, k), 8, larger="resnet18"),
}


def _plugins() -> dict[str, ArchInfo]:
    from bench.plugins.registry import ARCH_PLUGINS

    return {e.name: e.obj for e in ARCH_PLUGINS if e.name not in ARCHS}


def all_archs() -> dict[str, ArchInfo]:
    """Built-in architectures, then those registered by plugins (entry-point group distill_bench.archs)."""
    return {**ARCHS, **_plugins()}


def arch_info(name: str) -> ArchInfo:
    archs = all_archs()
    if name not in archs:
        raise unknown_name("architecture", name, archs)
    return archs[name]


def larger_arch(name: str) -> str:
    """The larger twin of `name` (a teacher bigger than its student), or `name` when it has none."""
    return arch_info(name).larger or name


def base_arch(name: str) -> str:
    """The undefended architecture under `name` (itself for a plain architecture)."""
    info = arch_info(name)
    return base_arch(info.base) if info.base and info.base != name else name


def create_model(arch: str, dataset, logit_scale: float = 1.0) -> Classifier:
    """Build `arch` for `dataset` (a bench.plugins.datasets.Dataset), normalization inside."""
    info = arch_info(arch)
    c, h, w = dataset.shape
    if min(h, w) < info.min_side:
        raise BenchInputError(
            f"architecture {arch!r} needs inputs of at least {info.min_side}x{info.min_side}; "
            f"dataset {dataset.name!r} has {h}x{w}"
        )
    transform = info.input_transform() if info.input_transform is not None else None
    return Classifier(info.build(c, h, dataset.num_classes), dataset.mean, dataset.std, logit_scale, transform)
