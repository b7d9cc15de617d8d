"""The registry finds plugins through entry points, the way a third-party package registers them."""
from __future__ import annotations

import textwrap
import warnings

import pytest

from bench.core.errors import BenchInputError
from bench.plugins.registry import ATTACKS, DEFENSES, PluginLoadWarning, Registry

PLUGIN_MODULE = '''
from dataclasses import dataclass
import torch.nn.functional as F
from defenses.base import Defense

class LabelSmoothing(Defense):
    """Cross-entropy with label smoothing (a third-party defense)."""
    name = "label-smoothing"

    @dataclass(frozen=True)
    class Config:
        epochs: int = 1
        smoothing: float = 0.1

    def train(self, cfg, ctx, upstream):
        from bench.plugins.training import Optim
        model = ctx.create_model()
        def loss_fn(m, x, y):
            logits = m(x)
            return F.cross_entropy(logits, y, label_smoothing=cfg.smoothing), logits
        return ctx.fit(model, loss_fn, Optim(cfg.epochs, 1e-3, optimizer="adam"))
'''


def make_plugin(root, entry_points: str, module: str = PLUGIN_MODULE, name="acme_defenses", version="1.2.0"):
    """A real installed distribution on sys.path: a module plus its .dist-info with entry points."""
    (root / f"{name}.py").write_text(module)
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    make_plugin(tmp_path, """
        [distill_bench.defenses]
        label-smoothing = acme_defenses:LabelSmoothing
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    DEFENSES.reload()
    yield tmp_path
    monkeypatch.undo()
    DEFENSES.reload()


def test_builtins_are_registered_through_entry_points():
    assert {"vanilla", "defensive-distillation"} <= set(DEFENSES.names())
    assert {"pgd", "cw"} <= set(ATTACKS.names())
    assert DEFENSES.get("vanilla").source == "built-in"
    fields = dict(DEFENSES.get("defensive-distillation").config_fields)
    assert fields["temperature"] == 100.0


def test_discovers_a_third_party_plugin(plugin_path):
    entry = DEFENSES.get("label-smoothing")
    assert entry.source == "acme_defenses==1.2.0"
    assert entry.description.startswith("Cross-entropy with label smoothing")
    assert dict(entry.config_fields) == {"epochs": 1, "smoothing": 0.1}


def test_third_party_plugin_trains_and_is_attacked_through_the_cli(plugin_path, tmp_path, capsys):
    from bench.cli import main

    code = main(["run", "--defense", "label-smoothing", "--attacks", "pgd", "--dataset", "digits",
                 "--norm", "linf", "--n-eval", "40", "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 0
    assert "label-smoothing" in capsys.readouterr().out


def test_a_broken_plugin_warns_and_the_rest_still_work(tmp_path, monkeypatch):
    make_plugin(tmp_path, """
        [distill_bench.defenses]
        broken = broken_pkg:DoesNotExist
    """, module="raise ImportError('missing dependency foo')\n", name="broken_pkg", version="0.1")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("defense", "distill_bench.defenses", ("name", "Config", "requires", "train"))
    with pytest.warns(PluginLoadWarning, match=r"'broken' from broken_pkg failed to load.*missing dependency foo"):
        names = registry.names()
    assert "broken" not in names and "vanilla" in names


def test_unknown_name_lists_close_matches_and_all_names():
    with pytest.raises(BenchInputError) as err:
        DEFENSES.get("defensive-distilation")
    msg = str(err.value)
    assert "did you mean 'defensive-distillation'" in msg
    assert "available:" in msg and "vanilla" in msg


def test_resolve_all_and_lists():
    # `all` is every defense that can be trained: the `external` entry only names audited models
    assert DEFENSES.resolve("all") == [n for n in DEFENSES.names() if n != "external"]
    assert "external" in DEFENSES.names()
    assert ATTACKS.resolve("cw, pgd,cw") == ["cw", "pgd"]
    with pytest.raises(BenchInputError, match="unknown attack 'pgdd'"):
        ATTACKS.resolve("pgdd")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DEFENSES.reload()
        DEFENSES.names()  # the built-ins load without a single warning
