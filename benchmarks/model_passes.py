"""Faster model passes, measured: eager vs `torch.inference_mode`, `channels_last` and `torch.compile`
for the model the attacks query, per workload, with how far each route's results are from eager's.

Run: `.venv/bin/python benchmarks/model_passes.py [--n 200] [--device cpu]`. One run prints every
route beside eager on the same model (papernot-mnist, vanilla, trained here) and the same inputs
(the first n mnist-5k test images):
- re-prediction: the harness's forward-only pass (what it does for every returned point), all n
  examples in batches of 500, repeated;
- pgd-margin 40 steps and square (the project's adapters, forward + backward and forward only).
Times are the median of `--repeats` runs after one warm-up run (the compile time is the warm-up's
excess, printed apart). "identical" means bit-identical outputs; otherwise the largest absolute
difference of the logits (re-prediction) or of the adversarial inputs (attacks), and whether any
prediction changed.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.specs import Budget  # noqa: E402
from bench.plugins.datasets import load_dataset  # noqa: E402
from defenses.base import TrainContext  # noqa: E402
from defenses.vanilla import Vanilla  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """(first call s, median of the next `repeats` s, the last result)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="first n mnist-5k test images (default 200)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of the vanilla papernot-mnist model")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (default 3)")
    parser.add_argument("--square-queries", type=int, default=300, help="Square's query budget (default 300)")
    parser.add_argument("--routes", default="eager,inference_mode,channels_last,compile",
                        help="routes to measure (comma-separated)")
    args = parser.parse_args()
    device = torch.device(args.device)
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]

    data = load_dataset("mnist-5k")
    ctx = TrainContext(data, "papernot-mnist", device, seed=0, quiet=True)
    model = Vanilla().train(Vanilla.Config(epochs=args.epochs), ctx, {}).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = data.x_test[: args.n].to(device), data.y_test[: args.n].to(device)
    print(f"device {device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads), torch {torch.__version__}, {args.n} mnist-5k test images, "
          f"papernot-mnist vanilla ({args.epochs} epochs); median of {args.repeats} after one warm-up\n", flush=True)

    from bench.plugins.attacks.pgd_margin import PGDMargin
    from bench.plugins.attacks.square import Square

    budget = Budget("linf", 0.3)
    gen = lambda: torch.Generator().manual_seed(0)

    def variant(route):
        """(the model this route queries, how it prepares inputs, the grad-free context of forward-only passes)."""
        if route == "channels_last":
            cl = model.to(memory_format=torch.channels_last)
            return cl, lambda t: t.contiguous(memory_format=torch.channels_last), torch.no_grad
        if route == "compile":
            return torch.compile(model), lambda t: t, torch.no_grad
        if route == "inference_mode":
            return model, lambda t: t, torch.inference_mode
        return model, lambda t: t, torch.no_grad

    def repredict(m, prep, forward_only):
        with forward_only():
            return torch.cat([m(prep(x[i:i + 500])) for i in range(0, len(x), 500)])

    workloads = {
        "re-prediction ×20": lambda m, prep, fo: [repredict(m, prep, fo) for _ in range(20)][-1],
        "pgd-margin 40 steps": lambda m, prep, fo: PGDMargin(PGDMargin.Config(steps=40)).run(
            m, prep(x), y, budget=budget, num_classes=10, generator=gen()),
        f"square {args.square_queries} queries": lambda m, prep, fo: Square(Square.Config(
            n_queries=args.square_queries)).run(m, prep(x), y, budget=budget, num_classes=10, generator=gen()),
    }
    rows, reference = [], {}
    for route in routes:
        for name, work in workloads.items():
            if route == "inference_mode" and not name.startswith("re-prediction"):
                continue  # the attacks need gradients or run their own no_grad loops: the route is for forward-only passes
            m, prep, fo = variant(route)
            try:
                first, median, out = timed(lambda: work(m, prep, fo), args.repeats)
            except Exception as exc:  # noqa: BLE001 - a route this machine cannot run is a row, not a crash
                rows.append((name, route, None, None, f"failed: {type(exc).__name__}: {str(exc)[:80]}"))
                continue
            out = out.detach().float().contiguous()
            if route == "eager":
                reference[name] = (median, out)
                rows.append((name, route, median, first - median, "reference"))
                continue
            ref_time, ref = reference[name]
            diff = (out - ref).abs().max().item()
            if name.startswith("re-prediction"):
                changed = int((out.argmax(1) != ref.argmax(1)).sum())
            else:
                with torch.no_grad():
                    changed = int(((model(out.to(device)).argmax(1) != y) != (model(ref.to(device)).argmax(1) != y)).sum())
            same = "identical" if diff == 0 else f"max |Δ| {diff:.2g}, {changed} outcome(s) changed"
            rows.append((name, route, median, first - median, f"{ref_time / median:.2f}× · {same}"))
        model.to(memory_format=torch.contiguous_format)

    print("| workload | route | seconds | warm-up excess s | vs eager · results |")
    print("|---|---|--:|--:|---|")
    for name, route, seconds, excess, note in rows:
        s = "—" if seconds is None else f"{seconds:.3f}"
        e = "—" if excess is None else f"{excess:.1f}"
        print(f"| {name} | {route} | {s} | {e} | {note} |")


if __name__ == "__main__":
    main()
