"""Resuming a sweep: find the earlier sweep folder of the same command and overrides.

``router-lab simulate -m ... +resume=true`` re-runs the same command into the most recent sweep
folder whose recorded overrides are the same (Hydra's ``multirun.yaml``); each job then skips
itself when its folder is complete (see :mod:`router_lab.report.jobs`).
"""

from __future__ import annotations

import re
from pathlib import Path

SWEEP_ROOT = Path("outputs/multirun")  # matches hydra.sweep.dir in router_lab/conf/config.yaml
_RESUME = re.compile(r"^\+{0,2}resume=(.*)$")
_TRUE = {"true", "1", "yes", "on"}


def wants_resume(args: list[str]) -> bool:
    """True when the overrides ask for ``resume=true`` (as ``+resume=true`` or ``++resume=…``)."""
    return any((m := _RESUME.match(arg)) and m.group(1).strip().lower() in _TRUE for arg in args)


def is_multirun(args: list[str]) -> bool:
    return "-m" in args or "--multirun" in args


def _is_hydra_override(arg: str) -> bool:
    key = arg.lstrip("+~")
    return key.startswith(("hydra.", "hydra/"))


def task_overrides(args: list[str]) -> list[str]:
    """The overrides that shape the jobs (no flags, no ``hydra.*``, no ``resume``), sorted."""
    return sorted(arg for arg in args if not arg.startswith("-") and not _is_hydra_override(arg)
                  and not _RESUME.match(arg))


def find_sweep_to_resume(command: str, args: list[str], root: Path = SWEEP_ROOT) -> Path | None:
    """The newest ``root/<command>/*`` sweep whose task overrides equal those in ``args``."""
    from omegaconf import OmegaConf

    wanted = task_overrides(args)
    candidates = sorted((root / command).glob("*/multirun.yaml"), reverse=True)
    for path in candidates:
        try:
            recorded = OmegaConf.load(path).hydra.overrides.task
            earlier = task_overrides([str(x) for x in recorded])
        except Exception:  # noqa: BLE001 - a damaged multirun.yaml is simply not a match
            continue
        if earlier == wanted:
            return path.parent
    return None


def with_resumed_sweep_dir(command: str, args: list[str]) -> list[str]:
    """Add ``hydra.sweep.dir=<earlier sweep>`` to a resumed multirun that does not name one."""
    import sys

    if not (is_multirun(args) and wants_resume(args)):
        return args
    if any(arg.lstrip("+").startswith("hydra.sweep.dir=") for arg in args):
        return args
    for folder in (SWEEP_ROOT.parent, SWEEP_ROOT, SWEEP_ROOT / command):
        if folder.exists() and not folder.is_dir():
            from router_lab.errors import RouterLabError

            raise RouterLabError(f"{folder}: is a file; expected the folder of earlier sweeps to resume "
                                 "(or pass hydra.sweep.dir=…)")
    found = find_sweep_to_resume(command, args)
    if found is None:
        print(f"router-lab: resume: no earlier sweep of these overrides under "
              f"{SWEEP_ROOT / command}; starting a new sweep", file=sys.stderr)
        return args
    print(f"router-lab: resume: continuing the sweep in {found}", file=sys.stderr)
    return [*args, f"hydra.sweep.dir='{found}'"]
