"""What a node costs before the store has seen anything like it: model passes × measured seconds.

`--dry-run` (bench/report/plan_text.py) prefers history — the median seconds per epoch or per
example of similar nodes in the store — and falls back to this model, saying which it used:

  seconds = forward-equivalents per example × examples × seconds per forward-equivalent

The seconds per forward-equivalent are measured here, once per (architecture, dataset, device), by
timing forward and backward passes of a freshly built model (a second or two): as attacks run them
(input gradient only, batch 256) and as training does (weight gradients, batch 128). A
gradient step (one forward, one backward) counts as `GRADIENT_STEP` forward-equivalents. The passes
of each attack are read from its loop and config; attacks that stop on an example once it is broken
(AutoAttack's later components, Square, JSMA; PGD, C&W's search and DDN/FMN do not) pay their full cost only
on the examples still robust, taken as `SURVIVE_ROBUST` of them for a model trained against a
budget (its config has `eps`) and `SURVIVE_STANDARD` for any other — a prior, not a measurement,
that the first similar record in the store replaces.
"""
from __future__ import annotations

import time
from typing import Mapping

import torch

from bench.core.errors import BenchInputError
from bench.plugins.registry import ATTACKS

GRADIENT_STEP = 3.0  # a backward pass costs about two forwards
# what every node pays besides its passes: loading the model, the harness's clean and adversarial
# predictions, the adapter's copy, writing the artifact (measured: 0.2-0.5 s per node on digits)
NODE_OVERHEAD_S = 0.4
SURVIVE_ROBUST = 0.8
SURVIVE_STANDARD = 0.1
_MEASURED: dict[tuple, float] = {}


def seconds_per_forward(arch: str, dataset, device: torch.device, *, weights: bool) -> float:
    """Seconds per example per forward-equivalent for `arch` on `dataset`'s inputs here, measured
    as the mean of a forward and a backward pass (divided by GRADIENT_STEP) over three repetitions:
    with `weights`, as training runs them (batch 128, gradients into the parameters too); without,
    as attacks do (batch 256, the input's gradient only, which skips the weight gradients)."""
    key = (arch, dataset.name, str(device), weights)
    batch = 128 if weights else 256
    if key not in _MEASURED:
        from bench.plugins.archs import create_model

        model = create_model(arch, dataset).to(device).eval()
        for p in model.parameters():
            p.requires_grad_(weights)
        x = torch.rand(batch, *dataset.shape, device=device, requires_grad=True)
        y = torch.zeros(batch, dtype=torch.long, device=device)
        torch.nn.functional.cross_entropy(model(x), y).backward()  # warm-up (allocations, kernels)
        started = time.perf_counter()
        for _ in range(3):
            x.grad = None
            torch.nn.functional.cross_entropy(model(x), y).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        _MEASURED[key] = (time.perf_counter() - started) / (3 * batch * GRADIENT_STEP)
    return _MEASURED[key]


def attack_passes(name: str, config: Mapping, norm: str, eps: float, dataset, robust: bool) -> float | None:
    """Forward-equivalents per attacked example, or None for an attack this model does not know
    (a plugin may declare `cost(config, norm, eps, dataset) -> float` on its class)."""
    c, g = config, GRADIENT_STEP
    survive = SURVIVE_ROBUST if robust else SURVIVE_STANDARD
    targets = min(9, dataset.num_classes - 1)
    features = 1
    for side in dataset.shape:
        features *= side
    if name in ("pgd", "pgd-margin", "bpda", "transfer"):
        passes = c.get("steps", 40) * c.get("restarts", 1) * c.get("eot_draws", 1) * g
        return passes + 1 if name == "transfer" else passes  # transfer: crafted on the surrogate, replayed once
    if name == "fgsm":
        return g
    if name == "cw":
        # every example runs every search step; early abort ends few of them (benchmarks/README.md)
        return c.get("binary_search_steps", 9) * c.get("max_iterations", 1000) * g
    if name in ("ddn", "ddn-margin", "fmn"):
        return c.get("steps", 100) * g + (10 if name == "fmn" else 0)
    if name == "hsj":  # forward-only: a gradient estimate of min(init·√t, max) queries per step, plus the
        # step-size and boundary searches (about 25 queries a step) and the initial noise search
        init, cap = c.get("initial_gradient_eval_steps", 100), c.get("max_gradient_eval_steps", 1000)
        steps = c.get("steps", 64)
        return sum(min(init * t ** 0.5, cap) for t in range(1, steps + 1)) + 25 * steps + 100
    if name == "apgd":
        per = c.get("iterations", 100) * c.get("restarts", 1) * c.get("eot_iter", 1) * g
        return per * (targets if c.get("component") == "apgd-t" else 1)
    if name == "autoattack":  # APGD-CE on all; APGD-T, FAB-T (two gradients a step) and Square on survivors
        return 100 * g + survive * (targets * 100 * g + targets * 100 * 2 * g + 5000)
    if name == "square":
        return c.get("n_queries", 5000) * c.get("restarts", 1) * survive + 1
    if name == "noise":
        return c.get("samples", 100)
    if name == "sparse-rs":
        return c.get("n_queries", 1000) * survive + 1
    if name == "jsma":  # two features per iteration up to the budget, one Jacobian row (two with logits)
        return eps * features / 2 * g * (2 if c.get("use_logits") else 1) * max(survive, 0.5)
    if name in ("ibp", "crown-ibp"):
        return 2.0 if name == "ibp" else 2.0 * dataset.num_classes
    return None


def train_passes(node, dataset) -> float | None:
    """Forward-equivalents of training `node`: epochs × training examples × passes per example
    (one gradient step, plus the inner attack's for a robust defense, times its replays), the
    validation curve, and a teacher's soft labels."""
    cfg = node.config
    epochs = getattr(cfg, "epochs", None)
    if not epochs:
        return None
    n_train, n_val = len(dataset.y_train), len(dataset.y_val)
    per_example = GRADIENT_STEP
    robust = hasattr(cfg, "eps")
    if robust:
        from defenses.perturb import MADRY

        steps = getattr(cfg, "pgd_steps", None)
        if steps is None:
            steps = (MADRY.get(dataset.name) or MADRY[dataset.family])[1]
        inner = getattr(cfg, "inner", "pgd")
        per_example += (GRADIENT_STEP if inner in ("fgsm", "free") else steps * GRADIENT_STEP)
        per_example *= getattr(cfg, "replays", 1) if inner == "free" else 1
    if node.upstream:  # the teacher is queried (soft labels, or its logits at x' per batch)
        per_example += 1 + (steps * GRADIENT_STEP if robust and node.defense == "adaad" else 0)
    total = epochs * n_train * per_example + epochs * n_val  # clean validation every epoch
    if robust:  # APGD-CE + APGD-T (3 targets), 20 iterations each, about 20 times per training
        every = getattr(cfg, "val_every", 0) or max(1, epochs // 20)
        total += (epochs // every) * n_val * 80 * GRADIENT_STEP
    return total


def trained_against_a_budget(config) -> bool:
    """The model's config has `eps` (a dataclass or a stored dict): an attack's cost depends on how
    many examples survive it, so such a model's attacks cost more than an undefended one's."""
    return "eps" in config if isinstance(config, dict) else hasattr(config, "eps")


def model_estimate(task, runner) -> float | None:
    """Seconds for `task` by the cost model (None: no model for it)."""
    node, dataset = task.node, runner.dataset
    if task.kind == "train" and node.stored_id is not None:
        return None
    try:
        per_forward = seconds_per_forward(node.arch, dataset, runner.device, weights=task.kind == "train")
    except (BenchInputError, KeyError, RuntimeError, ValueError):  # an architecture not buildable here (external)
        return None
    if task.kind == "train":
        passes = train_passes(node, dataset)
        return None if passes is None else NODE_OVERHEAD_S + passes * per_forward
    if task.kind in ("attack", "binarize"):
        spec = task.attack.spec
        cls = ATTACKS.get(task.attack.name).obj
        config = dict(task.attack.recorded_config)
        declared = getattr(cls, "cost", None)
        robust = trained_against_a_budget(node.config)
        passes = (declared(config, spec.budget.norm, spec.budget.eps, dataset) if callable(declared) else
                  attack_passes(task.attack.name, config, spec.budget.norm, spec.budget.eps, dataset, robust))
        if passes is None:
            return None
        n = task.samples * (1 + 400 / passes) if task.kind == "binarize" else spec.n  # + the readout's points
        return NODE_OVERHEAD_S + passes * n * per_forward
    if task.kind == "probe":
        return 10 * GRADIENT_STEP * len(dataset.eval_slice(task.n_eval)[1]) * per_forward
    return None

