"""Figures as PNG bytes (pure functions of typed data; no version stamps, so byte-stable):
security curves, input-gradient histograms, the temperature sweep."""
from __future__ import annotations

import pandas as pd


def _png(fig) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})  # no version stamp: byte-stable
    plt.close(fig)
    return buf.getvalue()


def _figure(size=(7, 4.5)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def security_curve_png(title: str, bands: dict[str, dict[float, tuple[float, float, float, bool]]],
                       norm: str) -> bytes:
    """Robust accuracy (the per-example worst case) vs ε: one line per defense, its 95% interval as a
    band; a point where the row is not ranked (an upper bound) is drawn hollow."""
    fig, ax = _figure()
    for i, (name, points) in enumerate(sorted(bands.items())):
        eps = sorted(points)
        color = f"C{i % 10}"
        values = [100 * points[e][0] for e in eps]
        ax.fill_between(eps, [100 * points[e][1] for e in eps], [100 * points[e][2] for e in eps], color=color,
                        alpha=0.15, linewidth=0)
        ax.plot(eps, values, "-", color=color, label=name)
        for e, v in zip(eps, values):
            upper = points[e][3]
            ax.plot([e], [v], "o", color=color, markerfacecolor="none" if upper else color)
    ax.set_xlabel(f"{norm} budget ε")
    ax.set_ylabel("robust accuracy, worst case (%)")
    ax.set_title(f"{title} (hollow: upper bound, not ranked)", fontsize=9)
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper right")
    return _png(fig)


def gradient_histogram_png(values, label: str) -> bytes:
    """Histogram of per-example |∇x CE|₁ (log10; exact zeros counted apart): masking piles up at zero."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    zero = int((values == 0).sum())
    fig, ax = _figure((6, 3.5))
    positive = values[values > 0]
    if len(positive):
        ax.hist(np.log10(positive), bins=30, color="tab:blue")
    ax.set_xlabel("log10 |∇x cross-entropy|₁ per input")
    ax.set_ylabel("inputs")
    ax.set_title(f"{label} · {zero} of {len(values)} inputs have exactly zero gradient", fontsize=9)
    return _png(fig)


def temperature_png(key: tuple, frame: pd.DataFrame) -> bytes:
    """JSMA success vs T (Papernot 2016) and C&W median L2 vs T (Carlini & Wagner 2016), one figure."""
    dataset, defense, n = key
    fig, ax = _figure((6.5, 4))
    if "jsma success" in frame:
        ax.plot(frame.index, 100 * frame["jsma success"], "o-", color="tab:red", label="JSMA success (%)")
    if "cw success (any size)" in frame:
        ax.plot(frame.index, 100 * frame["cw success (any size)"], "s--", color="tab:green",
                label="C&W success, any size (%)")
    ax.set_xscale("log")
    ax.set_xlabel("distillation temperature T")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-2, 102)
    if "cw median l2" in frame:
        ax2 = ax.twinx()
        ax2.plot(frame.index, frame["cw median l2"], "^:", color="tab:blue", label="C&W median L2")
        ax2.set_ylabel("C&W median L2")
        ax2.legend(loc="lower right", fontsize=7)
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title(f"{defense} on {dataset} (n = {n}): Papernot 2016 vs Carlini & Wagner 2016", fontsize=9)
    return _png(fig)




def training_curve_png(label: str, curves) -> bytes:
    """Validation clean and robust accuracy and the training loss per epoch, one panel per fit."""
    import matplotlib.pyplot as plt  # noqa: F401 - backend set by _figure

    fig, ax = _figure((7, 4))
    loss_ax = ax.twinx()
    for i, curve in enumerate(curves):
        epochs = curve.get("epochs") or []
        tag = f" (fit {i + 1})" if len(curves) > 1 else ""
        xs = [e["epoch"] for e in epochs]
        ax.plot(xs, [100 * e["val_clean_acc"] for e in epochs], "-", label=f"validation clean{tag}")
        robust = [(e["epoch"], 100 * e["val_robust_acc"]) for e in epochs if e.get("val_robust_acc") is not None]
        if robust:
            ax.plot(*zip(*robust), "-o", markersize=3, label=f"validation robust{tag}")
        loss_ax.plot(xs, [e["train_loss"] for e in epochs], ":", color="grey", label=f"train loss{tag}")
        if curve.get("selected_epoch"):
            ax.axvline(curve["selected_epoch"], color="black", alpha=0.3, linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy on the validation split (%)")
    loss_ax.set_ylabel("training loss")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.set_title(f"{label} · training curve (vertical line: the epoch returned)", fontsize=9)
    handles = ax.get_legend_handles_labels()
    more = loss_ax.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="center right")
    return _png(fig)
