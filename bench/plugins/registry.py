"""Registries of defenses, attacks and architectures, discovered through entry points.

Built-ins are declared in distill-bench's own pyproject under the same entry-point groups a third
party uses (`distill_bench.defenses`, `distill_bench.attacks`), so there is one path for both.
A plugin that fails to load gives a warning naming it and its package; the others still work.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, Iterator, TypeVar

from bench.core.errors import BenchInputError, unknown_name

T = TypeVar("T")

BUILTIN_DISTRIBUTION = "distill-bench"


class PluginLoadWarning(UserWarning):
    """A registered plugin could not be imported or does not fit its contract."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: Any  # the class
    source: str  # "built-in" or "package==version"

    @property
    def description(self) -> str:
        doc = getattr(self.obj, "description", None) or (self.obj.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def fingerprint(self) -> dict:
        """What identifies the code that computes with this plugin, for cache keys: its package
        and version, and the SHA-256 of the source of every module its class (and its Config)
        inherits from outside the standard library and torch. Editing the plugin's code changes
        it, so a cached artifact made by the old code is never reused (docs/architecture.md)."""
        return code_fingerprint(self.obj, self.source)

    @property
    def config_fields(self) -> list[tuple[str, Any]]:
        cfg_cls = getattr(self.obj, "Config", None)
        if cfg_cls is None:
            return []
        default = cfg_cls()
        return [(f.name, getattr(default, f.name)) for f in dataclasses.fields(default)]


_SKIP_MODULES = ("builtins", "torch", "typing", "abc", "dataclasses")
# module name and the ids of the functions and classes it defined when first hashed → (its file's
# mtime then, the hash): `inspect.getsource` reads the file on disk, not the code this process loaded
_HASHED: dict[tuple, tuple[int | None, str]] = {}


def _mtime(module) -> int | None:
    import os

    try:
        return os.stat(module.__file__).st_mtime_ns
    except (AttributeError, TypeError, OSError):
        return None


def _source_hash(name: str, module) -> str:
    """The SHA-256 of `module`'s source, refused when its file changed on disk after this process
    first hashed the code it loaded (an edit made while a run runs: the run's later nodes, the
    adaptive stage's among them, would be keyed by code other than the code computing them). A
    module reloaded since defines new objects and is hashed afresh."""
    import hashlib
    import inspect

    def digest_of_file() -> str:
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):  # no source (a compiled module): its package version stands for it
            source = ""
        return hashlib.sha256(source.encode()).hexdigest()[:16]

    if module is None:
        return hashlib.sha256(b"").hexdigest()[:16]
    defined = frozenset(id(v) for v in vars(module).values() if getattr(v, "__module__", None) == name)
    key, mtime = (name, defined), _mtime(module)
    if key in _HASHED:
        then, digest = _HASHED[key]
        if then == mtime:
            return digest
        if digest_of_file() != digest:
            raise BenchInputError(f"{module.__file__} changed on disk after this run loaded it: what it computes "
                                  "from now on would be keyed by code it is not running; run the command again")
        _HASHED[key] = (mtime, digest)  # touched, not edited
        return digest
    digest = digest_of_file()
    _HASHED[key] = (mtime, digest)
    return digest


def _module_sources(cls) -> dict[str, str]:
    import inspect
    import sys

    found: dict[str, str] = {}
    # a class: every module of its MRO; a function (an architecture's build): its module
    classes = list(inspect.getmro(cls)) if isinstance(cls, type) else [cls]
    config = getattr(cls, "Config", None)
    if isinstance(config, type):
        classes += list(inspect.getmro(config))
    for klass in classes:
        name = getattr(klass, "__module__", "") or ""
        if name in found or name.split(".")[0] in _SKIP_MODULES:
            continue
        found[name] = _source_hash(name, sys.modules.get(name))
    return found


def code_fingerprint(obj: Any, source: str) -> dict:
    return {"package": source, "modules": _module_sources(obj)}


class Registry(Generic[T]):
    """Named plugins of one kind. `get(name)` fails with the close matches and the full list."""

    def __init__(self, kind: str, group: str, required: tuple[str, ...]):
        self.kind = kind
        self.group = group
        self.required = required
        self._entries: dict[str, Entry] | None = None

    def _discover(self) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown package"
            source = "built-in" if dist_name == BUILTIN_DISTRIBUTION else f"{dist_name}=={dist.version}"
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not take the harness down
                warnings.warn(
                    f"{self.kind} plugin {ep.name!r} from {dist_name} failed to load ({ep.value}): "
                    f"{type(exc).__name__}: {exc}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
                continue
            missing = [attr for attr in self.required if not hasattr(obj, attr)]
            if missing:
                warnings.warn(
                    f"{self.kind} plugin {ep.name!r} from {dist_name} lacks {', '.join(missing)}; skipped",
                    PluginLoadWarning,
                    stacklevel=2,
                )
                continue
            if ep.name in found:
                warnings.warn(
                    f"{self.kind} {ep.name!r} is registered twice ({found[ep.name].source} and {source}); "
                    f"keeping {found[ep.name].source}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
                continue
            found[ep.name] = Entry(ep.name, obj, source)
        return found

    @property
    def entries(self) -> dict[str, Entry]:
        if self._entries is None:
            self._entries = self._discover()
        return self._entries

    def reload(self) -> None:
        self._entries = None

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries[name] for name in self.names())

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def get(self, name: str) -> Entry:
        try:
            return self.entries[name]
        except KeyError:
            pass
        raise unknown_name(self.kind, name, self.names()) from None

    def resolve(self, names: str) -> list[str]:
        """Parse a comma-separated list, or 'all', into validated names (order kept, no repeats)."""
        if names.strip() == "all":  # entries marked `in_all = False` (adaptive-stage attacks) run by name only
            return [n for n in self.names() if getattr(self.get(n).obj, "in_all", True)]
        out: list[str] = []
        for name in (n.strip() for n in names.split(",")):
            if not name:
                continue
            self.get(name)
            if name not in out:
                out.append(name)
        if not out:
            raise BenchInputError(f"no {self.kind} named in {names!r} (available: {', '.join(self.names())})")
        return out


DEFENSES: Registry = Registry("defense", "distill_bench.defenses", ("name", "Config", "requires", "train"))
ATTACKS: Registry = Registry("attack", "distill_bench.attacks", ("name", "norms", "minimal_norm", "run"))
# Architectures: a plugin registers an `bench.plugins.archs.ArchInfo` instance (name, description, build,
# min_side, optional input_transform and base); built-ins live in bench.archs.ARCHS.
ARCH_PLUGINS: Registry = Registry("architecture", "distill_bench.archs", ("name", "build", "min_side"))
