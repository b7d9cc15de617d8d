"""Session setup, once for every verb and for the Python API: dataset, device, store, runner,
executor. A dry run on a missing store opens an empty temporary one (it writes nothing)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from bench.compose.requests import Session
from bench.execute.devices import auto_attack_batch_size, resolve_device
from bench.execute.executors import LocalExecutor, RayExecutor, WorkerContext
from bench.execute.runner import Runner
from bench.plugins.archs import arch_info
from bench.plugins.datasets import dataset_info, load_dataset
from bench.store.artifacts import Store


class OpenSession:
    """A `Session` made live: the loaded dataset, the device, the open store and its runner."""

    def __init__(self, session: Session, log: Callable[[str], None], *, create_store: bool = True,
                 check: Callable | None = None):
        """`check(dataset, device)`, when given, runs before the store is opened (the audit's model
        checks: a refused model writes nothing)."""
        self.request = session
        self.log = log
        info = dataset_info(session.dataset)
        self.family = info.family
        self.arch = session.arch or info.default_arch
        arch_info(self.arch)
        self.device = resolve_device(session.device)
        self.dataset = load_dataset(session.dataset, session.data_root, session.download)
        if check is not None:
            check(self.dataset, self.device)
        self._tmp = None
        if session.dry_run and not Path(session.store).is_dir():
            self._tmp = tempfile.TemporaryDirectory(prefix="bench-dry-run-")
            self.store = Store(self._tmp.name, log=log)
        else:
            self.store = Store(session.store, create=create_store, log=log)
        for problem in self.store.problems.values():
            log(f"bench: warning: {problem}")
        batch_size = session.attack_batch_size
        if batch_size == "auto":
            batch_size = auto_attack_batch_size(self.arch, self.dataset, self.device)
            log(f"attack batch size: {batch_size} (auto, {self.device})")
        self.attack_batch_size = batch_size
        self.runner = Runner(self.store, self.dataset, self.device, quiet=session.quiet, log=log,
                             attack_batch_size=batch_size, epochs=session.epochs, command=session.command,
                             force=session.force)

    def executor(self, retries: int | None = None):
        """The executor the session names (local by default; Ray imported only when asked for)."""
        s = self.request
        retries = s.retries if retries is None else retries
        if s.executor == "local":
            return LocalExecutor(self.runner, self.log, retries=retries)
        ctx = WorkerContext(str(Path(s.store).resolve()), s.dataset, s.data_root, s.device, self.attack_batch_size,
                            s.epochs, s.command, self.runner.force, frozenset(self.store.trusted_factories))
        return RayExecutor(ctx, self.log, address=s.ray_address, retries=retries, gpus_per_task=s.gpus_per_task)
