"""Errors the CLI turns into one clear line and exit code 2 (bad input), never a traceback."""


class BenchInputError(ValueError):
    """The user gave a value we cannot use. The message names the value and what is allowed."""


class AttackContractError(RuntimeError):
    """An attack adapter returned adversarial examples the harness will not accept
    (outside the budget, outside [0, 1], wrong shape, non-finite)."""


def unknown_name(kind: str, name: str, available) -> BenchInputError:
    """'unknown <kind> <name>; did you mean …? (available: …)': the close matches, then everything."""
    import difflib

    available = list(available)
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return BenchInputError(f"unknown {kind} {name!r}{hint} (available: {', '.join(available) or 'none'})")
