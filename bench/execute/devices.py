"""Devices: `--device` resolved to a torch device, and `--attack-batch-size auto` measured on it."""
from __future__ import annotations

import math

import torch

from bench.core.errors import BenchInputError
from bench.plugins.archs import create_model


def resolve_device(name: str):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchInputError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchInputError(f"device {name!r} requested but CUDA is not available here; use --device cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise BenchInputError(f"unsupported device {name!r}; allowed: auto, cpu, cuda, cuda:N")
    if device.type == "cpu" and device.index not in (None, 0):
        raise BenchInputError(f"device {name!r}: torch has one CPU device; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise BenchInputError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def auto_attack_batch_size(arch: str, dataset, device) -> int:
    """`--attack-batch-size auto`: on a GPU, the largest power of two whose forward and backward
    pass of `arch` fits in a quarter of the free device memory (attacks keep a few copies of the
    batch, its gradient and their best iterate), measured on the architecture itself; 500 on the CPU.
    The number chosen is part of each record's key (results depend on the batch size)."""
    if device.type != "cuda":
        return 500
    model = create_model(arch, dataset).to(device).eval()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    probe = 64
    x = torch.rand(probe, *dataset.shape, device=device, requires_grad=True)
    model(x).logsumexp(1).sum().backward()
    per_example = max((torch.cuda.max_memory_allocated(device) - base) / probe, 1.0)
    free, _ = torch.cuda.mem_get_info(device)
    del model, x
    torch.cuda.empty_cache()
    fits = int(free * 0.25 / per_example)
    return max(probe, min(16384, 2 ** int(math.log2(max(fits, 1)))))
