"""Benchmark: the binarization test of a model's suite attacks with its binarized models built per
attack (as before) and built once and shared (as `bench run --binarization N` now does), in one run
on the same model and examples; the samples must come out identical. Not a test: the numbers
depend on the machine.

    .venv/bin/python benchmarks/binarization_shared.py --store leaderboard/store --model 898a91b53d5265d9 \\
        --dataset mnist-5k --samples 20
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from bench.core.specs import Budget
from bench.execute.binarization import binarization_test, binarized_examples
from bench.plugins.datasets import load_dataset
from bench.plugins.registry import ATTACKS
from bench.store.artifacts import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--model", required=True, help="a model id of the store")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--attacks", default="autoattack,fmn,pgd-margin,square")
    args = parser.parse_args()
    device = torch.device("cpu")
    dataset = load_dataset(args.dataset)
    model = Store(args.store, create=False).load_model(args.model, dataset, device).eval()
    x, y = dataset.eval_slice(None)
    budget = Budget("linf", args.eps)
    attacks = [ATTACKS.get(name).obj() for name in args.attacks.split(",")]
    common = dict(num_classes=dataset.num_classes, seed=0, device=device, limit=args.samples)

    started = time.perf_counter()
    alone = [binarization_test(model, a, x, y, budget, **common) for a in attacks]
    per_attack = time.perf_counter() - started

    started = time.perf_counter()
    shared = binarized_examples(model, x, y, budget, **common)
    built = time.perf_counter() - started
    together = [binarization_test(model, a, x, y, budget, **common, binarized=shared) for a in attacks]
    once = time.perf_counter() - started

    for a, r1, r2 in zip(attacks, alone, together):
        assert r1.samples == r2.samples, a.name
        print(f"{a.name:<12} success {r1.success_rate:.0%} of {len(r1.counted)} counted (identical both ways)")
    print(f"\n{len(attacks)} attacks × {args.samples} samples on {args.model} ({args.dataset}, L∞ {args.eps}):")
    print(f"  binarized models built per attack: {per_attack:.1f} s")
    print(f"  built once ({built:.1f} s) and shared: {once:.1f} s")
    print(f"  ratio {per_attack / once:.2f}× ({per_attack / (len(attacks) * args.samples):.2f} → "
          f"{once / (len(attacks) * args.samples):.2f} s per attack and sample)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
