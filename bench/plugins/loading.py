"""Loading a model no plugin trained, safely, and checking it is what the harness expects.

Safe loading only: safetensors, or a `.pt`/`.pth` state dict through
`torch.load(weights_only=True)`; never a pickled module. A model that is not what the harness
expects (probabilities instead of logits, another input range, train mode, a wrong output shape)
is refused with one clear line, never mis-evaluated.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from bench.core.errors import BenchInputError
from bench.core.files import sha256_bytes
from bench.plugins.archs import create_model

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")


# --- loading ---------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file, or from a `.pt`/`.pth` file via weights_only loading."""
    path = Path(path)
    if not path.is_file():
        raise BenchInputError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise BenchInputError(f"checkpoint {str(path)!r}: allowed formats are {', '.join(CHECKPOINT_SUFFIXES)} "
                              f"(a state dict; pickled modules are never loaded)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the file's problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchInputError(f"checkpoint {str(path)!r} cannot be read safely ({first[:200]})") from None
    for key in ("state_dict", "model", "model_state_dict"):  # common wrappers of a state dict
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BenchInputError(f"checkpoint {str(path)!r} is not a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def _fit(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise BenchInputError(f"the weights do not fit {what}: {detail}") from None


def load_checkpoint(path: str | Path, arch: str, dataset) -> nn.Module:
    """A registered architecture (`bench list archs`) with the checkpoint's weights. The state dict
    may be the whole `Classifier`'s (as `bench` saves them) or the bare network's (its `body`)."""
    state = read_state_dict(path)
    model = create_model(arch, dataset)
    if any(k.startswith("body.") for k in state):
        _fit(model, state, f"architecture {arch!r}")
    else:
        _fit(model.body, state, f"architecture {arch!r}")
    return model.eval()


def load_factory(spec: str, weights: str | Path | None = None) -> nn.Module:
    """`package.module:factory` → the module it returns (called with no arguments), with `weights`."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise BenchInputError(f"--model {spec!r} is not package.module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # noqa: BLE001 - an import path that fails, whatever the reason
        raise BenchInputError(f"--model {spec!r} cannot be imported ({type(exc).__name__}: {exc})") from None
    try:
        model = factory()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit too (`builtins:exit`): a failed factory, never exit 0
        raise BenchInputError(f"--model {spec!r}: the factory failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, nn.Module):
        raise BenchInputError(f"--model {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        _fit(model, read_state_dict(weights), f"the module returned by {spec!r}")
    return model


def load_zoo(name: str, dataset: str, norm: str) -> nn.Module:
    """`robustbench:<name>` through the robustbench package (which downloads the weights)."""
    try:
        from robustbench.utils import load_model
    except ImportError:
        raise BenchInputError(f"--model robustbench:{name} needs the robustbench package (pip install robustbench) "
                              f"and network access to download the weights") from None
    zoo_dataset = {"cifar10": "cifar10", "cifar100": "cifar100"}.get(dataset)
    if zoo_dataset is None:
        raise BenchInputError(f"RobustBench has no models for dataset {dataset!r} (cifar10, cifar100)")
    threat = {"linf": "Linf", "l2": "L2"}.get(norm.split(",")[0], "Linf")
    try:
        return load_model(model_name=name, dataset=zoo_dataset, threat_model=threat)
    except Exception as exc:  # noqa: BLE001 - offline, unknown name, ...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise BenchInputError(f"robustbench:{name} could not be loaded (the zoo needs the network to download "
                              f"weights; {type(exc).__name__}: {first})") from None


# --- what the harness expects of a model ---------------------------------------------------------
def check_model(model: Any, dataset, device: torch.device, n: int = 200) -> None:
    """Refuse, with one clear line, a model the harness would mis-evaluate."""
    if not isinstance(model, nn.Module):
        raise BenchInputError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise BenchInputError("the model is in train mode (dropout and BatchNorm statistics would change its "
                              "predictions); call model.eval() before auditing it")
    x, y = dataset.eval_slice(min(n, len(dataset.y_test)))
    x, y = x.to(device), y.to(device)
    k = dataset.num_classes
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # noqa: BLE001
        raise BenchInputError(f"the model fails on [0, 1] inputs of shape {tuple(x.shape)} "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), k):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BenchInputError(f"the model returned {shape} for {len(x)} inputs; it must return logits of shape "
                              f"(N, {k})")
    if not torch.isfinite(out).all():
        raise BenchInputError("the model returned non-finite outputs on clean test inputs")
    # AutoAttack's check_range_output idea, up to scale: non-negative rows that all sum to the same
    # constant are probabilities times that constant (softmax × 100 passes a [0, 1] test)
    sums = out.sum(1)
    if out.min() >= 0 and sums.min() > 0 and (sums.max() - sums.min()) <= 1e-3 * sums.mean():
        scale = "" if abs(sums.mean().item() - 1) <= 1e-3 else f" times {sums.mean().item():.4g}"
        raise BenchInputError(f"the model returns probabilities{scale} (non-negative outputs, every row summing to "
                              f"{sums.mean().item():.4g}), not logits; return the logits before the softmax "
                              f"(attacks on probabilities saturate and mask gradients)")
    acc = (out.argmax(1) == y).float().mean().item()
    chance = 1 / k
    if acc < chance + 0.3:  # near chance on [0, 1]: does another input convention fit it?
        mean = torch.tensor(dataset.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(dataset.std, device=device).view(1, -1, 1, 1)
        for label, xt in (("[0, 255]", x * 255), ("[-1, 1]", x * 2 - 1), ("normalized (x - mean) / std", (x - mean) / std)):
            with torch.no_grad():
                other = (model(xt).argmax(1) == y).float().mean().item()
            if other > acc + 0.3:
                raise BenchInputError(f"the model expects inputs in another range: accuracy {acc:.0%} on [0, 1] "
                                      f"inputs, {other:.0%} on {label}; wrap it so that it takes [0, 1] "
                                      f"(normalization inside the model)")


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the model's state dict serialized as safetensors (what the store saves)."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return sha256_bytes(save(state))
