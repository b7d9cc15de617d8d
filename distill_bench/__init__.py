"""distill-bench's public Python API: audit any model the way `bench run` evaluates a defense.

    import distill_bench
    result = distill_bench.audit(model, dataset="mnist-5k", norm="linf", n=1000)
    print(result.markdown())                  # the leaderboard rows, evidence and probes
    result.robust_accuracy                    # {("linf", 0.3): 0.0, ...} per-example worst case
    result.masking_suspected, result.fired_rules

Everything else (`bench.*`) is internal and may change between versions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from bench import __version__
from bench.audit import AuditResult, load_checkpoint, load_factory, read_state_dict

__all__ = ["audit", "AuditResult", "load_checkpoint", "load_factory", "read_state_dict", "__version__"]


def audit(model, dataset: str = "mnist-5k", norm: str = "linf", eps: float | Sequence[float] | None = None,
          attacks: str | Sequence[str] = "all", n: int | None = 1000, device: str = "auto",
          store: str | Path = "runs", *, seed: int = 0, adaptive: bool = True,
          attack_config: Mapping[str, Mapping[str, Any]] | None = None, batch_size: int = 500,
          epochs: int | None = None, data_root: str | None = None, name: str | None = None,
          quiet: bool = True, log: Callable[[str], None] | None = None) -> AuditResult:
    """Attack `model` with the suite, probe it, run the masking rules and the adaptive stage, and
    return its assessment.

    model: any `torch.nn.Module` in eval mode taking [0, 1] NCHW inputs and returning logits.
    dataset: `bench list datasets`; norm: linf, l2, l0, comma-separated, or all; eps: budgets for a
    single norm (default: the dataset's); attacks: names or "all" (`bench list attacks`); n: the
    first n test examples (None: all); store: the folder that caches models and records (the same
    store as `bench run`: the model is keyed by the hash of its weights and its class's code, so an
    audit is computed once); attack_config: {"cw": {"max_iterations": 100}}; epochs: training length
    of the undefended surrogate that transfer attacks train (default: vanilla's).

    Raises `ValueError` (bench.errors.BenchInputError) with one clear line for bad input or a model
    the harness would mis-evaluate (probabilities, another input range, train mode)."""
    from bench.audit import audit_model

    return audit_model(model, dataset=dataset, norm=norm, eps=eps, attacks=attacks, n=n, device=device, store=store,
                       seed=seed, adaptive=adaptive, attack_config=attack_config, batch_size=batch_size, epochs=epochs,
                       data_root=data_root, name=name, quiet=quiet, log=log)
