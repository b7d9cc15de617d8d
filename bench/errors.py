"""Errors the CLI turns into one clear line and exit code 2 (bad input), never a traceback."""


class BenchInputError(ValueError):
    """The user gave a value we cannot use. The message names the value and what is allowed."""


class AttackContractError(RuntimeError):
    """An attack adapter returned adversarial examples the harness will not accept
    (outside the budget, outside [0, 1], wrong shape, non-finite)."""
