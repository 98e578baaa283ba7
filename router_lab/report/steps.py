"""A line per step of a long command (train with its CV calibration, cross-fitted evaluate, export
with its gates): ``router-lab: evaluate: [2/5] fold 2 of 5 …``, then the total time.

The lines go to stdout with the command's summary: stderr stays for the one-line error, so a
command that fails after some steps still ends with exactly one line there.

The command opens ``reporting(name, total)``; library code marks its steps with ``step(title)``,
which does nothing outside a reporting command (the library, a notebook) or inside a sweep job (a
sweep prints one line per finished job instead)."""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class _Reporter:
    command: str
    total: int | None
    started_s: float = field(default_factory=time.perf_counter)
    done: int = 0

    def say(self, text: str) -> None:
        print(f"router-lab: {self.command}: {text}", file=sys.stdout, flush=True)


_current: contextvars.ContextVar[_Reporter | None] = contextvars.ContextVar("router_lab_steps", default=None)


def _quiet() -> bool:
    from router_lab.report.jobs import in_multirun

    return in_multirun()


@contextlib.contextmanager
def reporting(command: str, total: int | None = None) -> Iterator[None]:
    """Steps marked inside print a line each; at the end, one line with the elapsed time."""
    if _quiet() or _current.get() is not None:  # a sweep job, or already inside a command
        yield
        return
    reporter = _Reporter(command, total)
    token = _current.set(reporter)
    try:
        yield
        reporter.say(f"done in {time.perf_counter() - reporter.started_s:,.1f} s")
    finally:
        _current.reset(token)


def expect(extra_steps: int) -> None:
    """Add steps the command could not count when it started (e.g. one per fold)."""
    reporter = _current.get()
    if reporter is not None:
        reporter.total = (reporter.total or reporter.done) + extra_steps


def step(title: str) -> None:
    """Mark the start of a step (no-op outside a reporting command)."""
    reporter = _current.get()
    if reporter is None:
        return
    reporter.done += 1
    count = f"[{reporter.done}/{max(reporter.total, reporter.done)}] " if reporter.total else ""
    reporter.say(f"{count}{title} ({time.perf_counter() - reporter.started_s:,.1f} s so far)")


def reported(command: str, total: int | None = None):  # noqa: ANN201 - a decorator
    """Run a command handler inside ``reporting(command, total)``."""
    import functools

    def wrap(handler):  # noqa: ANN001, ANN202
        @functools.wraps(handler)
        def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            with reporting(command, total):
                return handler(*args, **kwargs)
        return run
    return wrap
