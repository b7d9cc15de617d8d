"""What keeps an attack adapter from changing the model it, or any later attack, is judged on
(bench/execute/evaluate.py): a deep copy per batch for the adapter, and checks of its state and of
its forward (hooks, an assigned `forward`) after each call."""
from __future__ import annotations

import torch

from bench.core.errors import AttackContractError


def _check_model_unchanged(model: torch.nn.Module, frozen: dict, attack_name: str) -> None:
    """Back to eval mode; refuse the result (and restore the model) if the adapter changed a parameter
    or buffer (weights, `logit_scale`, BatchNorm statistics), so it cannot poison later records."""
    model.eval()
    state = model.state_dict()
    changed = [k for k, v in frozen.items() if k not in state or not torch.equal(state[k].detach(), v)]
    if changed:
        model.load_state_dict(frozen)
        raise AttackContractError(f"attack {attack_name!r} modified the model it attacked ({', '.join(changed[:3])}"
                                  f"{' …' if len(changed) > 3 else ''}); result refused and the model restored")


def _hook_signature(model: torch.nn.Module) -> list:
    """What could change a forward without changing a parameter: hooks, and `forward` assigned on an
    instance, per submodule."""
    return [(name, tuple(sub._forward_hooks), tuple(sub._forward_pre_hooks), "forward" in vars(sub))
            for name, sub in model.named_modules()]


def _adapter_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The model the adapter attacks: a deep copy per batch, so that nothing an adapter does to it
    (a forward hook, an assigned `forward`, changed weights) can reach the harness's re-prediction or
    the model another attack sees. A model that cannot be copied is attacked as itself and guarded
    by the state and hook checks alone."""
    import copy

    try:
        return copy.deepcopy(model)
    except Exception:  # noqa: BLE001 - an uncopyable module (open handles): the checks still apply
        return model


def _check_forward_unchanged(model: torch.nn.Module, before: list, attack_name: str) -> None:
    after = _hook_signature(model)
    if after != before:
        changed = [a[0] or "model" for a, b in zip(after, before) if a != b] or ["model"]
        raise AttackContractError(f"attack {attack_name!r} changed the forward of the model it attacked (a hook or an "
                                  f"assigned forward on {', '.join(changed[:3])}); result refused (the harness "
                                  f"re-predicts on its own copy, which the adapter never sees)")
