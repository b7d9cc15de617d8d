"""Benchmark: our JSMA and C&W beside ART's and torchattacks' on the same model and inputs.

Prints wall time, success rate and perturbation size for each implementation, and the ratios
against ours. Not a test: numbers depend on the machine. Run it on CPU and, where there is one,
on a GPU (`--device cuda`):

    .venv/bin/python benchmarks/attacks_vs_libraries.py --n 200
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench.attacks.cw import CarliniWagnerL2
from bench.attacks.jsma import jsma_targeted
from bench.data import load_dataset
from defenses.base import TrainContext
from defenses.vanilla import Vanilla


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="test images (default 200)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs of the vanilla papernot-mnist model")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cw-steps", type=int, default=5, help="binary search steps (all C&W implementations)")
    parser.add_argument("--cw-iterations", type=int, default=100, help="iterations per search step (all)")
    parser.add_argument("--skip-torchattacks-jsma", action="store_true", help="it handles one image at a time")
    args = parser.parse_args()
    device = torch.device(args.device)

    import torchattacks
    from art.attacks.evasion import CarliniL2Method, SaliencyMapMethod
    from art.estimators.classification import PyTorchClassifier

    data = load_dataset("mnist-5k")
    ctx = TrainContext(data, "papernot-mnist", device, seed=0, quiet=True)
    model = Vanilla().train(Vanilla.Config(epochs=args.epochs), ctx, {}).eval()
    x, y = data.x_test[: args.n].to(device), data.y_test[: args.n].to(device)
    with torch.no_grad():
        keep = model(x).argmax(1) == y
    x, y = x[keep], y[keep]
    target = (y + torch.randint(1, 10, (len(y),), generator=torch.Generator().manual_seed(0)).to(device)) % 10
    print(f"device {device}, {len(y)} correctly classified mnist-5k test images, papernot-mnist "
          f"({args.epochs} epochs), torch {torch.__version__}")
    classifier = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                                   clip_values=(0.0, 1.0), device_type="gpu" if device.type == "cuda" else "cpu")
    rows = []
    print(f"\n{'attack':<8} {'implementation':<36} {'seconds':>9} {'time / ours':>12} {'success':>8} "
          f"{'success / ours':>15} {'size':>8}", flush=True)

    def report(row):
        """Print a row as soon as it is measured (ours comes first for each attack)."""
        rows.append(row)
        attack, name, seconds, success, size = row
        ref = next(r for r in rows if r[0] == attack and r[1] == "distill-bench")
        print(f"{attack:<8} {name:<36} {seconds:9.2f} {seconds / ref[2]:12.2f} {success:8.1%} "
              f"{(success / ref[3]) if ref[3] else float('nan'):15.2f} {size:8.3f}", flush=True)

    def jsma_row(name, x_adv, seconds):
        with torch.no_grad():
            hit = (model(x_adv.to(device)).argmax(1) == target).float()
        l0 = (x_adv.to(device) != x).flatten(1).float().mean(1)
        report(("JSMA", name, seconds, hit.mean().item(), l0[hit.bool()].mean().item() if hit.any() else float("nan")))

    ours, s = timed(lambda: jsma_targeted(model, x, target, gamma=0.145, use_logits=False, chunk=16))
    jsma_row("distill-bench", ours, s)
    art_jsma = SaliencyMapMethod(classifier, theta=1.0, gamma=0.145, batch_size=len(y), verbose=False)
    theirs, s = timed(lambda: art_jsma.generate(x.cpu().numpy(), y=np.eye(10)[target.cpu().numpy()]))
    jsma_row("ART SaliencyMapMethod", torch.from_numpy(theirs.astype(np.float32)), s)
    if not args.skip_torchattacks_jsma:
        ta_jsma = torchattacks.JSMA(model, theta=1.0, gamma=0.145)
        ta_jsma.set_mode_targeted_by_function(lambda images, labels: target)
        theirs, s = timed(lambda: ta_jsma(x, y))
        jsma_row("torchattacks JSMA", theirs, s)

    def cw_row(name, x_adv, seconds):
        with torch.no_grad():
            fooled = (model(x_adv.to(device)).argmax(1) != y).float()
        l2 = (x_adv.to(device) - x).flatten(1).norm(dim=1)
        report(("C&W L2", name, seconds, fooled.mean().item(),
                l2[fooled.bool()].median().item() if fooled.any() else float("nan")))

    cfg = CarliniWagnerL2.Config(binary_search_steps=args.cw_steps, max_iterations=args.cw_iterations,
                                 initial_const=0.1, learning_rate=0.1, abort_early=True)
    ours, s = timed(lambda: CarliniWagnerL2(cfg).run(model, x, y, budget=None, num_classes=10,
                                                      generator=torch.Generator().manual_seed(0)))
    cw_row("distill-bench", ours, s)
    art_cw = CarliniL2Method(classifier, confidence=0.0, targeted=False, learning_rate=0.1,
                             binary_search_steps=args.cw_steps, max_iter=args.cw_iterations, initial_const=0.1,
                             batch_size=len(y), verbose=False)
    theirs, s = timed(lambda: art_cw.generate(x.cpu().numpy()))
    cw_row("ART CarliniL2Method", torch.from_numpy(theirs.astype(np.float32)), s)
    ta_cw = torchattacks.CW(model, c=0.1, kappa=0, steps=args.cw_steps * args.cw_iterations, lr=0.1)
    theirs, s = timed(lambda: ta_cw(x, y))
    cw_row("torchattacks CW (one c, no search)", theirs, s)

    print("\nsize: JSMA mean share of features changed on successes; C&W median L2 on successes.")


if __name__ == "__main__":
    main()
