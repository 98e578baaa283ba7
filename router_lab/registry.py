"""One registry helper for every extension point: policies, estimators, labels, feature modes,
datasets, importers, workloads, engines, export targets.

A :class:`Registry` maps a name to an entry (a class or a function) plus optional metadata (a
config schema, a one-line summary).  Entries register themselves with a decorator::

    POLICIES = Registry("policy", field="policy.name", modules=("router_lab.policies",))

    @POLICIES.register("always_local", schema=AlwaysLocalConfig)
    class AlwaysLocal(Policy): ...

and are looked up with :meth:`Registry.get`, which raises the project's one-line error
(``policy.name: got 'x'; expected one of a, b, c``) for an unknown name.  ``modules`` names what to
import before the first lookup or listing: a module, or a package whose every submodule is
imported — so a new policy module dropped into ``router_lab/policies/`` registers itself with no
loader to edit, and importing a registry stays cheap until it is used.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from router_lab.errors import RouterLabError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: the object, and what the config groups and ``--help`` say of it."""

    name: str
    obj: T
    schema: type | None = None  # the config dataclass of this entry (Hydra schema), if any
    summary: str = ""  # one line for ``--help``; default: the first line of the object's docstring
    meta: dict[str, Any] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        """The schema's defaults (see :func:`schema_defaults`); ``{}`` without a schema."""
        return schema_defaults(self.schema) if self.schema is not None else {}


def schema_defaults(schema: type) -> dict[str, Any]:
    """The default of every field of a config dataclass that has one, ``name`` excluded: the one
    place an entry's defaults live (its ``__init__`` or factory repeats none)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(schema):
        if f.name == "name":
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


class Registry(Generic[T]):
    """Names → entries for one extension point (see the module docstring)."""

    def __init__(self, kind: str, field: str, modules: tuple[str, ...] = (),
                 error: str = "{field}: got {name!r}; expected one of {options}") -> None:
        self.kind = kind  # what an entry is, for messages: "policy", "estimator", ...
        self.field = field  # the config field that names an entry, for messages: "policy.name"
        self.error = error  # the unknown-name message: a format string of field, name, options
        self.modules = tuple(modules)
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = not self.modules

    # -- registration ---------------------------------------------------------------------------
    def register(self, name: str, obj: T | None = None, *, schema: type | None = None, summary: str = "",
                 **meta: Any) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, a decorator that does so.

        A second registration of a name with a different object is a programming error (two
        plug-ins claiming one name); registering the same object again is a no-op (re-imports)."""

        def add(target: T) -> T:
            old = self._entries.get(name)
            if old is not None and old.obj is not target and _qualname(old.obj) != _qualname(target):
                raise ValueError(f"{self.kind} {name!r} is registered twice: {_qualname(old.obj)} and "
                                 f"{_qualname(target)}")
            self._entries[name] = Entry(name, target, schema, summary or _first_line(target), dict(meta))
            return target

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that register a throw-away entry)."""
        self._entries.pop(name, None)

    # -- lookup ---------------------------------------------------------------------------------
    def load(self) -> None:
        """Import the modules that register the built-in entries (once)."""
        if self._loaded:
            return
        self._loaded = True
        for module in self.modules:
            imported = importlib.import_module(module)
            for info in pkgutil.iter_modules(getattr(imported, "__path__", [])):
                importlib.import_module(f"{module}.{info.name}")

    def entry(self, name: Any) -> Entry[T]:
        self.load()
        found = self._entries.get(name) if isinstance(name, str) else None
        if found is None:
            raise RouterLabError(self.error.format(field=self.field, name=name,
                                                   options=", ".join(self.names())))
        return found

    def get(self, name: Any) -> T:
        """The object registered as ``name``, or a one-line error naming the field and the options."""
        return self.entry(name).obj

    def names(self) -> list[str]:
        self.load()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def help_lines(self) -> list[str]:
        """``name  summary`` per entry, for the CLI's help."""
        width = max((len(n) for n in self.names()), default=0)
        return [f"{e.name:<{width}}  {e.summary}".rstrip() for e in self.entries()]


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"

