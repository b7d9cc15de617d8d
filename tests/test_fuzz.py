"""Property-based: every verb, given an invalid value anywhere, exits 2 with one error line and no
traceback, before any work (Hypothesis draws the invalid values)."""
from __future__ import annotations

import contextlib
import io
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cli import main
from bench.plugins.registry import ATTACKS, DEFENSES
from bench.store.artifacts import Store

_TMP = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
A_FILE = _TMP / "a-file"
A_FILE.write_text("not a folder")
STORE = _TMP / "store"
Store(STORE)  # an empty, valid store: the read-only verbs' baselines are valid
BASE = {
    "run": ["run", "--defense", "vanilla", "--dataset", "digits", "--attacks", "pgd", "--norm", "linf", "--quiet"],
    "train": ["train", "--defense", "vanilla", "--dataset", "digits", "--quiet"],
    "eval": ["eval", "--defense", "vanilla", "--dataset", "digits", "--attacks", "pgd", "--quiet"],
    "list": ["list", "models"],
    "leaderboard": ["leaderboard"],
    "store": ["store", "verify"],
}

names = st.text(alphabet=string.ascii_lowercase + "-_.", min_size=1, max_size=12)
bad_numbers = st.one_of(
    st.integers(max_value=0).map(str), st.sampled_from(["inf", "-inf", "nan", "1e400", "", "x", "0x", "1,2"]),
    st.floats(max_value=0, allow_nan=False).map(repr),
)
bad_floats_for_set = st.one_of(st.sampled_from(["inf", "-inf", "nan", "NaN", "1e999", "hot", ""]),
                               st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False).map(repr))

# (verbs the flag belongs to, a strategy for the extra argv that makes the invocation invalid)
INVALID = [
    (("run", "train", "eval"), st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)).map(
        lambda v: ["--seed", str(v)])),
    (("run", "train"), bad_numbers.map(lambda v: ["--epochs", v])),
    (("run", "train"), st.integers(min_value=100_001).map(lambda v: ["--epochs", str(v)])),
    (("run", "eval"), bad_numbers.map(lambda v: ["--n-eval", v])),
    (("run", "eval"), st.one_of(bad_numbers, st.floats(min_value=1.0001, max_value=1e6).map(repr)).map(
        lambda v: ["--eps", v])),
    (("run", "train"), st.tuples(st.sampled_from(["lr", "momentum", "weight_decay"]), bad_floats_for_set).map(
        lambda kv: ["--set", f"{kv[0]}={kv[1]}"])),
    (("run", "train", "eval"), names.filter(lambda n: n not in DEFENSES and n != "all"
                                            and all(p not in DEFENSES for p in n.split(","))).map(
        lambda v: ["--defense", v])),
    (("run", "eval"), names.filter(lambda n: n not in ATTACKS and n != "all").map(lambda v: ["--attacks", v])),
    (("run", "eval"), names.filter(lambda n: n not in ("linf", "l2", "l0", "all")).map(lambda v: ["--norm", v])),
    (("run", "train", "eval"), names.filter(lambda n: n not in ("auto", "cpu")).map(lambda v: ["--device", v])),
    (("run", "train", "eval", "list", "leaderboard", "store"), st.sampled_from(["", " ", str(A_FILE), "a\0b",
                                                                               "x" * 300]).map(
        lambda v: ["--out", v])),
    (("run", "train"), names.map(lambda v: ["--sweep", v])),
    (("leaderboard",), st.sampled_from(["", str(_TMP)]).map(lambda v: ["--output", v])),
    # values refused only once the dataset is known (digits: 360 test examples, 64 features), still before work
    (("run", "eval"), st.integers(min_value=361, max_value=10**30).map(lambda v: ["--n-eval", str(v)])),
    (("run", "eval"), st.floats(min_value=5e-324, max_value=2.9e-8).map(lambda v: ["--eps", repr(v)])),
    # a batch whose digits inputs alone (64 float32) exceed any machine's memory (2**50 bytes = 1 PiB)
    (("run", "train"), st.integers(min_value=2**50 // 256, max_value=10**30).map(lambda v: ["--set", f"batch_size={v}"])),
    # numbers in ASCII decimal only: other scripts' digits, full-width digits, `_` separators
    (("run", "train"), st.sampled_from(["٣", "２０", "1_0", "๓", "³"]).map(lambda v: ["--epochs", v])),
]


@st.composite
def invalid_invocations(draw):
    verbs, strategy = draw(st.sampled_from(INVALID))
    verb = draw(st.sampled_from(verbs))
    argv = BASE[verb] + draw(strategy)
    if "--out" not in argv:
        argv += ["--out", str(STORE)]
    return argv


def _run(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
    return code, err.getvalue()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invalid_invocations())
def test_invalid_input_exits_2_with_one_line_and_no_traceback(argv):
    code, err = _run(argv)
    assert code == 2, (argv, err)
    assert "Traceback" not in err, (argv, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("bench") and "error" in last, (argv, err)
    assert not (STORE / "models").exists() or not any((STORE / "models").iterdir()), argv
