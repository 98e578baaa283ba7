"""`make demo`: the whole flow on the default, each step a `router-lab` command as a user runs it.

build digits → train the two routers (pre-routing on the input; cascade on input + the device's
confidence) → export + validate them (ONNX) → `compare_policies` as a multirun with the learned
policies scoring through the exported ONNX files → the report.  Everything lands
in ``outputs/demo/<time>/``; the commands are printed so they can be re-run by hand.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path


def run(step: str, args: list[str]) -> None:
    """Run ``router-lab ARGS`` (stop the demo with its exit status if it fails)."""
    print(f"\n== {step}\n$ router-lab {shlex.join(args)}", flush=True)
    started_s = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "router_lab", *args], env=os.environ.copy())
    if result.returncode != 0:
        print(f"demo: step '{step}' failed (exit {result.returncode})", file=sys.stderr)
        raise SystemExit(result.returncode)
    print(f"   ({time.perf_counter() - started_s:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    sizes = [f"sim.n_requests={argv[0]}"] if argv else []  # default: the simulator's 10,000
    root = Path("outputs/demo") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    sweep_dir = root / "compare_policies"
    started_s = time.perf_counter()
    steps = iter(range(1, 9))

    def step(title: str, args: list[str]) -> None:
        run(f"{next(steps)}/8 {title}", args)

    step("build the digits dataset", ["dataset", "build", "digits"])
    exported = {}
    for name, mode in (("router", "input"), ("cascade", "input+confidence")):
        train_dir, export_dir = root / f"train_{name}", root / f"export_{name}"
        step(f"train the {name} router (logistic, mode {mode})",
             ["train", f"train.mode={mode}", f"hydra.run.dir={train_dir}"])
        step("export it to ONNX (conversion + validation gates)",
             ["export", f"export.run_dir={train_dir}", f"out={export_dir}", f"hydra.run.dir={export_dir}"])
        exported[name] = export_dir / "router.onnx"  # the runtime's DEFAULT_FILE: the demo imports no router_lab
    step("validate the exported router on its own",
         ["validate", str(exported["router"]), f"hydra.run.dir={root / 'validate'}"])
    step("compare every policy under load (multirun, learned policies on ONNX)",
         ["simulate", "-m", "+experiment=compare_policies_onnx", f"router_onnx={exported['router']}",
          f"cascade_onnx={exported['cascade']}", *sizes, f"hydra.sweep.dir={sweep_dir}"])
    step("the report", ["report", str(sweep_dir), f"hydra.run.dir={root / 'report_run'}"])
    print(f"\ndemo: done in {time.perf_counter() - started_s:.0f} s; everything is in {root}/")
    print(f"demo: open {sweep_dir / 'report' / 'report.html'} in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
