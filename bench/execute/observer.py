"""What the harness sees of an attack while it runs: every forward pass the adapter makes on its
copy of the model (bench/execute/evaluate.py), judged by the harness itself.

A forward hook on the adapter's copy sees each query (the input batch and the logits) before the
adapter does. Each query row is matched to the example it perturbs, and the harness computes its
own objective there: for an attack with a budget, the margin max_{j≠y} z_j − z_y at points inside
the budget and [0, 1] (above 0: misclassified); for a minimal-norm attack, minus the size of a
misclassified point. This gives, per example and with no trust in the adapter:

- the **loss trace summary** the attack-failure indicators need (Pintor et al. 2022): the number of
  queries, the objective at the first, its best, its best `window` queries before the end, and its
  lowest value — enough for "incomplete optimisation" (the best-so-far, rescaled to [0, 1], still
  moved by more than 0.05 over the last min(10, T) queries; bench/assess/indicators.py);
- the **best adversarial point it queried**: where the returned point is not adversarial but one
  of its queries was (Pintor's "silent success"), the harness counts the query — after judging it
  like any returned point (inside the budget, re-predicted on the unmodified model); for a
  minimal-norm attack, a smaller misclassified query replaces a larger returned one.

A row is matched to its own example when the query has the batch's shape and every row lies
within the budget of the input in the same position (the usual case); otherwise to the nearest
input (L2), kept only if inside the budget of it — an attack that queries subsets (AutoAttack,
Square) is matched that way, with the previous query's matching tried first. A wrong match cannot
make a wrong number: a point is evidence only for the example it is judged against. Adapters that
call `forward` directly, or query another model (a transfer attack's surrogate), leave no trace.
"""
from __future__ import annotations

import torch

_ABS_TOL = 1e-6
_REL_TOL = 1e-5
WINDOW = 10  # Pintor et al. 2022: the last min(10, T) iterations


def perturbation_size(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    if norm == "linf":
        return flat.abs().amax(1)
    if norm == "l2":
        return flat.norm(dim=1)
    if norm == "l0":
        return (flat != 0).float().mean(1)  # fraction of features changed
    raise ValueError(norm)


_sizes = perturbation_size


class QueryObserver:
    """Per-example trace summaries and best adversarial queries of one attack call on one batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float, minimal_norm: bool,
                 window: int = WINDOW):
        self.x, self.y, self.norm, self.eps, self.minimal_norm, self.window = x.detach(), y, norm, eps, minimal_norm, window
        n, dev = len(x), x.device
        self.count = torch.zeros(n, dtype=torch.long, device=dev)
        self.first = torch.full((n,), float("nan"), device=dev)
        self.best = torch.full((n,), float("-inf"), device=dev)
        self.low = torch.full((n,), float("inf"), device=dev)
        self.ring = torch.full((n, window), float("nan"), device=dev)  # best-so-far after each of the last queries
        self.adv_score = torch.full((n,), float("-inf"), device=dev)
        self.adv_point: torch.Tensor | None = None
        self.queries = 0
        self._last_map: torch.Tensor | None = None

    # --- the hook --------------------------------------------------------------------------------
    def attach(self, model: torch.nn.Module):
        return model.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        q = inputs[0] if inputs else None
        if not (isinstance(q, torch.Tensor) and isinstance(output, torch.Tensor)) or output.dim() != 2:
            return
        if q.dim() != self.x.dim() or q.shape[1:] != self.x.shape[1:] or len(q) != len(output) or not len(q):
            return
        with torch.no_grad():
            self._observe(q.detach().to(self.x.device, self.x.dtype), output.detach().to(self.x.device).float())

    def _within(self, q: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return _sizes(q - self.x[rows], self.norm) <= self.eps * (1 + _REL_TOL) + _ABS_TOL

    def _match(self, q: torch.Tensor) -> torch.Tensor:
        """Index of the example each query row perturbs (−1: none). For an attack with a budget,
        every matched row lies inside the budget of its example (`_observe` relies on it)."""
        n = len(self.x)
        if len(q) == n:
            own = torch.arange(n, device=q.device)
            if self.minimal_norm or bool(self._within(q, own).all()):
                return own
        last = self._last_map
        if last is not None and len(last) == len(q) and bool((last >= 0).all()) and bool(self._within(q, last).all()):
            return last
        nearest = torch.cdist(q.flatten(1).double(), self.x.flatten(1).double()).argmin(1)
        rows = nearest if self.minimal_norm else torch.where(self._within(q, nearest), nearest, torch.full_like(nearest, -1))
        self._last_map = rows
        return rows

    def _observe(self, q: torch.Tensor, logits: torch.Tensor) -> None:
        self.queries += 1
        rows = self._match(q)
        keep = rows >= 0
        if not bool(keep.any()):
            return
        q, logits, rows = q[keep], logits[keep], rows[keep]
        y = self.y[rows]
        true = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.clone()
        others.scatter_(1, y[:, None], float("-inf"))
        margin = others.amax(1) - true
        finite = torch.isfinite(margin)
        in_box = (q >= 0).flatten(1).all(1) & (q <= 1).flatten(1).all(1)
        adversarial = finite & (margin > 0) & in_box
        nan = torch.full_like(margin, float("nan"))
        if self.minimal_norm:
            objective = torch.where(adversarial, -_sizes(q - self.x[rows], self.norm), nan)
            score = objective
        else:  # _match keeps only rows inside the budget of their example: no size to compute again
            objective = torch.where(finite & in_box, margin, nan)
            score = torch.where(adversarial, margin, nan)
        self._update_trace(rows, objective)
        self._keep_adversarial(rows, q, score)

    def _update_trace(self, rows: torch.Tensor, objective: torch.Tensor) -> None:
        ok = ~torch.isnan(objective)
        if not bool(ok.any()):
            return
        rows, objective = rows[ok], objective[ok]
        n = len(self.x)
        # one value per example and query (EOT queries repeat an example): its best
        per = torch.full((n,), float("-inf"), device=objective.device).scatter_reduce(0, rows, objective, "amax")
        lowest = torch.full((n,), float("inf"), device=objective.device).scatter_reduce(0, rows, objective, "amin")
        seen = torch.zeros(n, dtype=torch.bool, device=objective.device)
        seen[rows] = True
        fresh = seen & torch.isnan(self.first)
        self.first[fresh] = per[fresh]
        self.best = torch.where(seen, torch.maximum(self.best, per), self.best)
        self.low = torch.where(seen, torch.minimum(self.low, lowest), self.low)
        idx = seen.nonzero().squeeze(1)
        self.ring[idx, self.count[idx] % self.window] = self.best[idx]
        self.count[idx] += 1

    def _keep_adversarial(self, rows: torch.Tensor, q: torch.Tensor, score: torch.Tensor) -> None:
        ok = ~torch.isnan(score)
        if not bool(ok.any()):
            return
        rows, q, score = rows[ok], q[ok], score[ok]
        better = score > self.adv_score[rows]
        if not bool(better.any()):
            return
        if self.adv_point is None:
            self.adv_point = self.x.clone()
        rows, q, score = rows[better], q[better], score[better]
        order = torch.argsort(score)  # ascending: the best row of an example is written last
        self.adv_point[rows[order]] = q[order]
        self.adv_score[rows[order]] = score[order]

    # --- results ---------------------------------------------------------------------------------
    def candidates(self) -> torch.Tensor:
        """Examples with an adversarial query (inside the budget unless the attack is minimal-norm)."""
        return torch.isfinite(self.adv_score)

    def before_last(self) -> torch.Tensor:
        """The best-so-far objective `window` queries before the end (the first value when there were
        no more queries than that)."""
        slot = self.ring.gather(1, (self.count % self.window)[:, None]).squeeze(1)
        return torch.where(self.count > self.window, slot, self.first)

    def columns(self) -> dict[str, torch.Tensor]:
        """The per-example trace summary (objective: margin inside the budget, or −size of a
        misclassified point for a minimal-norm attack)."""
        best = torch.where(self.count > 0, self.best, torch.full_like(self.best, float("nan")))
        low = torch.where(self.count > 0, self.low, torch.full_like(self.low, float("nan")))
        return {"trace_queries": self.count, "trace_first": self.first, "trace_best": best,
                "trace_before_last": self.before_last(), "trace_low": low}


TRACE_COLUMNS = ("trace_queries", "trace_first", "trace_best", "trace_before_last", "trace_low")


def adopt_queried(observer: QueryObserver, predict, xb: torch.Tensor, yb: torch.Tensor, draws: torch.Tensor,
                  sizes: torch.Tensor, within: torch.Tensor, stray: torch.Tensor):
    """The returned points' judgement (`draws`: predicted labels per draw, CPU; sizes, within, stray
    from check_adversarial), with the observer's best adversarial queries adopted where the returned
    point is not adversarial at the budget (or, for a minimal-norm attack, is larger): each adopted
    point is judged exactly like a returned one — its size against the budget and [0, 1], its
    labels re-predicted by `predict` on the unmodified model. Returns the updated four and a mask of
    the adopted examples (silent successes)."""
    y = yb.cpu()
    adopted = torch.zeros(len(y), dtype=torch.bool)
    candidates = observer.candidates().cpu()
    fooled = (draws != y).any(0) & ~stray
    if observer.minimal_norm:
        want = candidates & (~fooled | (observer.adv_score.cpu().neg() < sizes.cpu() * (1 - _REL_TOL)))
    else:
        want = candidates & ~(fooled & within.cpu())
    if not bool(want.any()) or observer.adv_point is None:
        return draws, sizes, within, stray, adopted
    rows = want.nonzero().squeeze(1)
    points = observer.adv_point[rows.to(xb.device)]
    in_box = (points >= 0).flatten(1).all(1) & (points <= 1).flatten(1).all(1)
    size = _sizes(points - xb[rows.to(xb.device)], observer.norm)
    inside = size <= observer.eps * (1 + _REL_TOL) + _ABS_TOL
    labels = predict(points)
    wrong = (labels != y[rows]).any(0) & in_box.cpu()
    if observer.minimal_norm:
        ok = wrong & (~fooled[rows] | (size.cpu() < sizes.cpu()[rows]))
    else:
        ok = wrong & inside.cpu()
    take = rows[ok]
    if len(take):
        draws = draws.clone()
        draws[:, take] = labels[:, ok]
        sizes, within, stray = sizes.clone(), within.clone(), stray.clone()
        sizes[take.to(sizes.device)] = size[ok.to(size.device)].to(sizes.dtype)
        within[take.to(within.device)] = inside[ok.to(inside.device)].to(within.device)
        stray[take.to(stray.device)] = False
        adopted[take] = True
    return draws, sizes, within, stray, adopted
