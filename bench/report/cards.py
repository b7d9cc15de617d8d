"""A model's card: its defense's paper, recipe and reported numbers (the defense's `card`,
docs/model-cards.md), beside its own training curve from the store. Pure views."""
from __future__ import annotations

from typing import Sequence

from bench.plugins.registry import DEFENSES


def card_of(defense: str):
    """The defense's PaperCard, or None (an unregistered or card-less defense)."""
    try:
        return getattr(DEFENSES.get(defense).obj, "card", None)
    except Exception:  # noqa: BLE001 - a defense no longer installed: its models still have pages
        return None


def card_markdown(card) -> list[str]:
    if card is None:
        return []
    lines = ["## Paper, recipe and departures", "", f"**Paper.** {card.paper}", "", f"**Its recipe.** {card.recipe}", ""]
    if card.reported:
        lines += ["**Its numbers** (compare with this model's robust accuracy below):", ""]
        lines += [f"- {setting}: {value}" for setting, value in card.reported] + [""]
    if card.departures:
        lines += ["**Where this model's recipe departs, and why:**", ""] + [f"- {d}" for d in card.departures] + [""]
    return lines


def curve_markdown(curves: Sequence[dict], png: str | None) -> list[str]:
    """The training curves measured on the validation split: a table every few epochs and the PNG."""
    lines = []
    for i, curve in enumerate(curves):
        epochs = curve.get("epochs") or []
        if not epochs:
            continue
        title = "## Training curve (validation split)" + (f" · fit {i + 1}" if len(curves) > 1 else "")
        attack = curve.get("attack") or "none (clean accuracy only)"
        lines += [title, "", f"Validation: {curve.get('validation_n')} images held out of the training split; "
                  f"robust accuracy under {attack}. Returned: epoch {curve.get('selected_epoch')} "
                  f"({curve.get('selection')}).", ""]
        if curve.get("stopped_early"):
            lines += [f"Stopped early: {curve['stopped_early']}.", ""]
        lines += ["| epoch | lr | train loss | train acc | val loss | val clean | val robust |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        step = max(1, len(epochs) // 12)
        shown = [e for j, e in enumerate(epochs) if j % step == 0 or j == len(epochs) - 1
                 or e.get("epoch") == curve.get("selected_epoch")]
        for e in shown:
            robust = e.get("val_robust_acc")
            mark = " ←" if e.get("epoch") == curve.get("selected_epoch") else ""
            lines.append(f"| {e['epoch']}{mark} | {e['lr']:.2g} | {e['train_loss']:.4f} | {100 * e['train_acc']:.1f} | "
                         f"{e['val_loss']:.4f} | {100 * e['val_clean_acc']:.1f} | "
                         f"{'—' if robust is None else f'{100 * robust:.1f}'} |")
        lines.append("")
    if lines and png:
        lines += [f"![training curve]({png})", ""]
    return lines
