"""`bench`: the command line. Verbs: run, train, eval, audit, list, leaderboard, store (`bench VERB --help`).

Exit codes: 0 success; 2 bad input (one line naming the bad value and what is allowed);
1 a failure of the harness or of an attack adapter (its message says which).
"""
from __future__ import annotations

import errno
import os
import shlex
import sys
import warnings
from typing import Sequence

from bench.cli.checks import check_arguments
from bench.cli.parser import build_parser
from bench.cli.verbs import VERBS
from bench.core.errors import AttackContractError, BenchInputError


def command_line(argv: Sequence[str]) -> str:
    """The command as a user would retype it (recorded in each record's provenance)."""
    return "bench " + " ".join(shlex.quote(a) for a in argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    log = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    warnings.formatwarning = lambda msg, cat, *a, **k: f"bench: warning: {msg}\n"
    try:
        check_arguments(args)
        code = VERBS[args.verb](args, log, command_line(argv))
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return code
    except BenchInputError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except AttackContractError as exc:
        print(f"bench: attack rejected: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; finished models and records are kept, rerun to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bench list defenses | head -1`: the reader left; end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        # a full disk or a read-only place: every write is atomic, so what was finished is kept and what
        # was being written was never renamed into place (bench/core/files.py write_atomic)
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"bench: error: {os.strerror(exc.errno).lower()}{where}; finished models and records are kept "
              f"(every write is atomic), free space or choose another folder and rerun to resume", file=sys.stderr)
        return 1


_DISK_ERRORS = {getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS") if hasattr(errno, name)}

