"""Executing a plan's tasks (bench/plan/tasks.py): here, one after another, or as Ray tasks on a cluster.

Both executors run the same `Task.run(runner)` against the same content-addressed store, so they
produce the same artifacts (`tests/test_executors.py`). A task that raises is retried a bounded
number of times, then reported; tasks that depend on it are skipped; independent tasks go on. Bad
input (`BenchInputError`) is not a node failure: it stops the run with its one-line message. A
killed driver, restarted with the same command, finds every finished artifact in the store.

Ray (`--executor ray`, `pip install 'distill-bench[ray]'`) is imported only when asked for. Every
worker must see the store at the same path (a shared filesystem: NFS, Lustre, a mounted bucket with
POSIX semantics and flock); artifacts are written atomically and per-node locks keep two workers
from computing the same node.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from bench.core.errors import BenchInputError
from bench.plan.tasks import Task


@dataclass
class Report:
    """What an execution did: done (task, seconds), failed {id: (task, error, attempts)}, skipped
    {id: (task, the failed dependency's id)}."""

    executor: str = "local"
    done: list[tuple[Task, float]] = field(default_factory=list)
    failed: dict[str, tuple[Task, str, int]] = field(default_factory=dict)
    skipped: dict[str, tuple[Task, str]] = field(default_factory=dict)

    def merge(self, other: "Report") -> None:
        self.done += other.done
        self.failed.update(other.failed)
        self.skipped.update(other.skipped)

    def summary_lines(self) -> list[str]:
        lines = [f"failed after {attempts} attempt(s): {task.kind} {task.label} [{tid}]: {error}"
                 for tid, (task, error, attempts) in self.failed.items()]
        lines += [f"skipped: {task.kind} {task.label} [{tid}] (needs failed {dep})"
                  for tid, (task, dep) in self.skipped.items()]
        return lines


def topological(tasks: Sequence[Task]) -> list[Task]:
    """Tasks ordered so that every dependency inside the set comes first (stable otherwise)."""
    by_id = {t.id: t for t in tasks}
    out: list[Task] = []
    state: dict[str, int] = {}

    def visit(task: Task) -> None:
        if state.get(task.id) == 2:
            return
        if state.get(task.id) == 1:
            raise BenchInputError(f"the plan has a cycle through {task.label}")
        state[task.id] = 1
        for dep in task.deps:
            if dep in by_id:
                visit(by_id[dep])
        state[task.id] = 2
        out.append(task)

    for task in tasks:
        visit(task)
    return out


class LocalExecutor:
    """One task after another in this process (the default)."""

    name = "local"

    def __init__(self, runner, log: Callable[[str], None], retries: int = 2):
        self.runner, self.log, self.retries = runner, log, retries

    def run(self, tasks: Sequence[Task]) -> Report:
        report = Report("local")
        ordered = topological(tasks)
        bad: set[str] = set()
        for i, task in enumerate(ordered, 1):
            blocked = next((d for d in task.deps if d in bad), None)
            if blocked is not None:
                report.skipped[task.id] = (task, blocked)
                bad.add(task.id)
                self.log(f"[{i}/{len(ordered)}] skip   {task.kind:<6} {task.label} (needs failed {blocked})")
                continue
            before = self.runner.computed()
            for attempt in range(1, self.retries + 2):
                t0 = time.perf_counter()
                try:
                    task.run(self.runner)
                except (BenchInputError, KeyboardInterrupt):
                    raise
                # a plugin's SystemExit or GeneratorExit is its node's failure too: it must not end the
                # run with exit 0 after one node (the other nodes never running)
                except BaseException as exc:  # noqa: BLE001 - a node's failure is reported, the run goes on
                    error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                    if attempt <= self.retries:
                        self.log(f"        {task.kind} {task.label} failed ({error}); retry {attempt}/{self.retries}")
                        continue
                    report.failed[task.id] = (task, error, attempt)
                    bad.add(task.id)
                    self.log(f"[{i}/{len(ordered)}] FAIL   {task.kind:<6} {task.label}: {error}")
                    break
                wall = time.perf_counter() - t0
                report.done.append((task, wall))
                state = "done" if self.runner.computed() > before else "cached"
                self.log(f"[{i}/{len(ordered)}] {state:<6} {task.kind:<6} {task.label} ({wall:.1f}s)")
                break
        return report


# --- Ray ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerContext:
    """What a Ray worker needs to rebuild the runner (picklable; one runner per worker process)."""

    store: str
    dataset: str
    data_root: str | None
    device: str
    attack_batch_size: int
    epochs: int | None
    command: str
    force: frozenset = frozenset()
    factories: frozenset = frozenset()  # the factories the user named (`--factory`): a worker trusts those only


_WORKER_RUNNERS: dict = {}


class TaskFailed(RuntimeError):
    """A task's own failure, told apart from a dependency's failure propagated by Ray."""

    def __init__(self, task_id: str, message: str):
        super().__init__(message)
        self.task_id = task_id


def run_in_worker(ctx: WorkerContext, task: Task, *upstream) -> tuple[str, float]:
    """Executed by a Ray worker: the task against the shared store. `upstream`: the results of the
    tasks it depends on (Ray starts this only after they finished)."""
    import torch

    from bench.plugins.datasets import load_dataset
    from bench.execute.devices import resolve_device
    from bench.execute.runner import Runner
    from bench.store.artifacts import Store

    runner = _WORKER_RUNNERS.get(ctx)
    if runner is None:
        device = resolve_device(ctx.device if ctx.device != "cuda" or torch.cuda.is_available() else "cpu")
        store = Store(ctx.store)
        store.trusted_factories = ctx.factories
        runner = Runner(store, load_dataset(ctx.dataset, ctx.data_root), device, quiet=True,
                        log=lambda msg: None, attack_batch_size=ctx.attack_batch_size, epochs=ctx.epochs,
                        command=ctx.command, force=ctx.force)
        _WORKER_RUNNERS[ctx] = runner
    t0 = time.perf_counter()
    try:
        task.run(runner)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a plugin included
        raise TaskFailed(task.id, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]) from None
    return task.id, time.perf_counter() - t0


class RayExecutor:
    """Each task a Ray task with its upstream tasks as dependencies and resource requests: a GPU (or
    `gpus_per_task` of one) where the cluster has GPUs and the run's device allows, a CPU otherwise."""

    name = "ray"

    def __init__(self, ctx: WorkerContext, log: Callable[[str], None], *, address: str | None = None,
                 retries: int = 2, gpus_per_task: float = 1.0, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise BenchInputError("--executor ray needs Ray: pip install 'distill-bench[ray]'") from None
        self.ray, self.ctx, self.log, self.retries = ray, ctx, log, retries
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True}
            if address:
                kwargs["address"] = address
            elif num_cpus is not None:
                kwargs["num_cpus"] = num_cpus
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise BenchInputError(f"cannot start or reach Ray{f' at {address}' if address else ''}: "
                                      f"{str(exc).splitlines()[0]}") from None
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0 and ctx.device != "cpu"
        self.resources = {"num_gpus": gpus_per_task, "num_cpus": 1} if has_gpu else {"num_cpus": 1}
        self._remote = ray.remote(run_in_worker)

    def run(self, tasks: Sequence[Task]) -> Report:
        ray = self.ray
        report = Report("ray")
        ordered = topological(tasks)
        refs: dict[str, object] = {}
        by_ref: dict[object, Task] = {}
        for task in ordered:
            upstream = [refs[d] for d in task.deps if d in refs]
            ref = self._remote.options(max_retries=self.retries, retry_exceptions=True, name=task.label[:80],
                                       **self.resources).remote(self.ctx, task, *upstream)
            refs[task.id] = ref
            by_ref[ref] = task
        pending = list(by_ref)
        done = 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            task = by_ref[ready[0]]
            done += 1
            try:
                _, wall = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - RayTaskError wrapping TaskFailed
                cause = getattr(exc, "cause", None) or exc
                origin = getattr(cause, "task_id", task.id)
                if origin != task.id:
                    report.skipped[task.id] = (task, origin)
                    self.log(f"[{done}/{len(ordered)}] skip   {task.kind:<6} {task.label} (needs failed {origin})")
                else:
                    message = str(cause).splitlines()[0][:300]
                    report.failed[task.id] = (task, message, self.retries + 1)
                    self.log(f"[{done}/{len(ordered)}] FAIL   {task.kind:<6} {task.label}: {message}")
                continue
            report.done.append((task, wall))
            self.log(f"[{done}/{len(ordered)}] done   {task.kind:<6} {task.label} ({wall:.1f}s)")
        return report
