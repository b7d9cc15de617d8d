"""Which architecture an *undefended* model of the same data is trained on — the transfer attack's
surrogate and rule R7's reference (bench/plan/attacks.py, bench/plan/tasks.py,
bench/assess/assessment.py).

A built-in architecture, or a plugin's that declares its `base`, is undefended under that base.
A plugin architecture that declares no `base` may carry its defense inside its forward (an input
transform, a custom backward, a label-only output): vanilla trained on it inherits the defense, so
a transfer attack crafted there fails where the forward leaves the autograd graph and is useless
where its gradient is obfuscated, and R7 compares the model with itself. The harness cannot tell
a defended forward from a plain one, so it takes the dataset's default architecture for these —
an undefended model of the dataset, trained as its own cached node."""
from __future__ import annotations

from bench.plugins.archs import ARCHS, arch_info, base_arch


def undefended_arch(arch: str, default_arch: str) -> str:
    """The declared base of `arch` (itself for a plain built-in); `default_arch` for a plugin
    architecture that declares none. Raises BenchInputError for an unregistered architecture."""
    if arch in ARCHS or arch_info(arch).base:
        return base_arch(arch)
    return default_arch
