"""distill-bench's public Python API: what `bench run` and `bench audit` do, as functions.

    import distill_bench
    result = distill_bench.run(defense="ta-chain", attacks="all", dataset="mnist-5k", n_eval=1000)
    print(result.markdown())                  # the leaderboard `bench run` prints and writes
    result = distill_bench.audit(model, dataset="mnist-5k", norm="linf")
    result.robust_accuracy                    # {("linf", 0.3): 0.0, ...} per-example worst case
    result.masking_suspected, result.fired_rules

Both build a typed request (`RunRequest`, `AuditRequest`; bench/compose/requests.py) and call the
same composer as the command line (bench/compose/). Everything else (`bench.*`) is internal and
may change between versions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from bench import __version__
from bench.compose.audit import AuditResult
from bench.compose.requests import AuditRequest, Evaluation, RunRequest, Session
from bench.compose.run import RunResult
from bench.plugins.loading import load_checkpoint, load_factory, read_state_dict

__all__ = ["run", "audit", "RunRequest", "AuditRequest", "Session", "Evaluation", "RunResult", "AuditResult",
           "load_checkpoint", "load_factory", "read_state_dict", "__version__"]


def run(request: RunRequest | None = None, /, *, log: Callable[[str], None] | None = None, **fields) -> RunResult:
    """Do exactly what `bench run` does: train the defenses, attack them with the suite and the
    adaptive stage, write the leaderboard into the store (or `leaderboard=`), return the result.

    Either a `RunRequest`, or its fields as keywords, named as the command line's options:
    `defense` ("ta-chain", a list, or "all"), `attacks`, `norm`, `eps`, `n_eval`, `sets`
    (["temperature=20", "cw.max_iterations=100"]), `sweep`, `adaptive`, `leaderboard`, and the
    session's `dataset`, `arch`, `seed`, `device`, `store`, `data_root`, `epochs`,
    `attack_batch_size`, `executor`, `force` (a frozenset of names), `dry_run`, `quiet`.

    Raises `ValueError` (bench.core.errors.BenchInputError) with one clear line for bad input."""
    from bench.compose.run import run as compose_run

    if request is None:
        request = RunRequest.build(**fields)
    elif fields:
        raise TypeError("pass a RunRequest or keyword fields, not both")
    return compose_run(request, log)


def audit(model, dataset: str = "mnist-5k", norm: str = "linf", eps: float | Sequence[float] | None = None,
          attacks: str | Sequence[str] = "all", n: int | None = None, device: str = "auto",
          store: str | Path = "runs", *, seed: int = 0, adaptive: bool = True,
          attack_config: Mapping[str, Mapping[str, Any]] | None = None, batch_size: int | str = 500,
          epochs: int | None = None, data_root: str | None = None, name: str | None = None,
          quiet: bool = True, log: Callable[[str], None] | None = None) -> AuditResult:
    """Attack `model` with the suite, probe it, run the masking rules and the adaptive stage, and
    return its assessment.

    model: any `torch.nn.Module` in eval mode taking [0, 1] NCHW inputs and returning logits.
    dataset: `bench list datasets`; norm: linf, l2, l0, comma-separated, or all; eps: budgets for a
    single norm (default: the dataset's); attacks: names or "all" (`bench list attacks`); n: the
    first n test examples (None, the default: the whole test split, as `bench audit`); store: the folder that caches models and records (the same
    store as `bench run`: the model is keyed by the hash of its weights and its class's code, so an
    audit is computed once); attack_config: {"cw": {"max_iterations": 100}}; epochs: training length
    of the undefended surrogate that transfer attacks train (default: vanilla's).

    Raises `ValueError` (bench.core.errors.BenchInputError) with one clear line for bad input or a
    model the harness would mis-evaluate (probabilities, another input range, train mode)."""
    from bench.compose.audit import audit as compose_audit

    session = Session(dataset=dataset, seed=seed, device=device, store=str(store), data_root=data_root, quiet=quiet,
                      epochs=epochs, attack_batch_size=batch_size)
    evaluation = Evaluation.build(attacks, norm=norm, eps=eps, per_attack=attack_config, n_eval=n, adaptive=adaptive)
    return compose_audit(model, AuditRequest(evaluation, session, name=name), log)
