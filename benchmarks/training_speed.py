"""Benchmark: training speed of each defense's loop, epochs per second and where the time goes.

Trains each named defense for a few epochs on mnist-5k (papernot-mnist) and prints epochs per
second, the share of the time spent in the inner PGD of the adversarial-training family, and the
test accuracy (so a speed-up that changes the model shows). Run it on two checkouts to compare
before and after a change (benchmarks/README.md):

    .venv/bin/python benchmarks/training_speed.py --epochs 2 --pgd-steps 10
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from bench.plugins.datasets import load_dataset
from bench.plugins.registry import DEFENSES
from defenses.base import TrainContext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defenses", default="vanilla,adversarial-training,trades")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pgd-steps", type=int, default=10, help="inner PGD steps of the robust defenses")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    data = load_dataset("mnist-5k")
    print(f"device {device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), torch "
          f"{torch.__version__}, mnist-5k (4,000 training images), papernot-mnist, {args.epochs} epochs")
    print(f"{'defense':<22} {'epochs/s':>9} {'s/epoch':>8} {'inner PGD share':>16} {'test acc':>9}")
    import defenses.perturb as perturb

    for name in args.defenses.split(","):
        cls = DEFENSES.get(name).obj
        fields = {f for f in cls.Config.__dataclass_fields__}
        cfg = {"epochs": args.epochs}
        if "pgd_steps" in fields:
            cfg.update(pgd_steps=args.pgd_steps, pgd_step_size=2.5 * 0.3 / args.pgd_steps)
        spent = [0.0]
        original = perturb.LinfPGD.perturb

        def timed_perturb(self, *a, **k):
            t0 = time.perf_counter()
            out = original(self, *a, **k)
            if device.type == "cuda":
                torch.cuda.synchronize()
            spent[0] += time.perf_counter() - t0
            return out

        perturb.LinfPGD.perturb = timed_perturb
        try:
            ctx = TrainContext(data, "papernot-mnist", device, seed=0, quiet=True)
            t0 = time.perf_counter()
            model = cls().train(cls.Config(**cfg), ctx, {})
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
        finally:
            perturb.LinfPGD.perturb = original
        with torch.no_grad():
            acc = (model(data.x_test.to(device)).argmax(1).cpu() == data.y_test).float().mean().item()
        print(f"{name:<22} {args.epochs / wall:9.3f} {wall / args.epochs:8.1f} {spent[0] / wall:16.1%} {acc:9.1%}",
              flush=True)


if __name__ == "__main__":
    main()
