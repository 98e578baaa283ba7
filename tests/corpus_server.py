"""A fork server for the bad-input corpus: imports router_lab's CLI once, then runs each case in a
forked child exactly as ``python -m router_lab ARGS`` would (own cwd, own stdout/stderr files, exit
code from ``router_lab.cli.main``), a few at a time.

Protocol: one JSON object per line on stdin ({"key", "args", "cwd", "stdout", "stderr"}); after
stdin closes it prints one JSON line per case ({"key", "rc", "seconds"}) as the cases end.  A child whose
command raises prints the traceback to its stderr and exits 1, as the real entry point would.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback

TIMEOUT_S = 180


def run_child(case: dict) -> None:
    os.chdir(case["cwd"])
    for fd, name in ((1, case["stdout"]), (2, case["stderr"])):
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    code = 1
    try:
        from router_lab.cli import main

        sys.argv = ["router-lab", *case["args"]]
        code = main(list(case["args"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - what the interpreter would print for an uncaught error
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    import router_lab.cli  # noqa: F401 - the imports every case shares, done once before forking
    import router_lab.config  # noqa: F401
    import router_lab.data.commands  # noqa: F401
    import router_lab.data.importers  # noqa: F401
    import router_lab.evaluate  # noqa: F401
    import router_lab.export.commands  # noqa: F401
    import router_lab.report.commands  # noqa: F401
    import router_lab.report.figures  # noqa: F401
    import router_lab.sim.commands  # noqa: F401
    import router_lab.train.commands  # noqa: F401

    cases = [json.loads(line) for line in sys.stdin if line.strip()]
    workers = max(1, int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    running: dict[int, tuple[str, float]] = {}
    pending = list(cases)
    while pending or running:
        while pending and len(running) < workers:
            case = pending.pop(0)
            pid = os.fork()
            if pid == 0:
                run_child(case)
            running[pid] = (case["key"], time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for child, (_key, started) in list(running.items()):
                if time.monotonic() - started > TIMEOUT_S:
                    os.kill(child, signal.SIGKILL)
            time.sleep(0.02)
            continue
        key, started = running.pop(pid)
        rc = os.waitstatus_to_exitcode(status)
        print(json.dumps({"key": key, "rc": rc, "seconds": round(time.monotonic() - started, 2)}),
              flush=True)


if __name__ == "__main__":
    main()
