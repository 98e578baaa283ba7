"""A fork server for the CLI tests: imports router_lab's CLI and its commands once, then runs each
request in a forked child exactly as ``python -m router_lab ARGS`` would (own cwd, own stdout/stderr
files, stdin from /dev/null, exit code from ``router_lab.cli.main``).  A fresh interpreter spends
1–3 s of CPU importing Hydra, pandas, scikit-learn and onnxruntime; a forked child spends none.

Two modes:

* ``corpus_server.py N`` (the bad-input corpus): one JSON object per line on stdin
  ({"key", "args", "cwd", "stdout", "stderr"}); after stdin closes it runs them N at a time and
  prints one JSON line per case ({"key", "rc", "seconds"}) as the cases end.
* ``corpus_server.py --serve`` (``tests.conftest.run_cli``): one request per line, run at once; its
  reply line ({"key", "rc", "seconds"}, rc null on a timeout, after the child was killed) comes
  when the child has ended.

A child whose command raises prints the traceback to its stderr and exits 1, as the real entry
point would.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback

TIMEOUT_S = 180


def run_child(case: dict) -> None:
    os.setsid()  # its own process group: a timeout kills the command and whatever it started
    if "env" in case:  # the caller's environment at the time of the call
        os.environ.clear()
        os.environ.update(case["env"])
    os.chdir(case["cwd"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
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
        # What the interpreter does at exit before os._exit ends the child: join non-daemon
        # threads, then the atexit handlers (joblib's workers and resource tracker stop there).
        try:
            threading._shutdown()
            atexit._run_exitfuncs()
        except BaseException:  # noqa: BLE001 - as at interpreter exit: print it, keep the code
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def preload() -> None:
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


def serve() -> None:
    """Run each request as it arrives; reply when its child has ended (or was killed at its timeout)."""
    preload()
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            run_child(case)
        deadline = started + float(case.get("timeout") or TIMEOUT_S)
        rc = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.005)
        print(json.dumps({"key": case["key"], "rc": rc, "seconds": round(time.monotonic() - started, 2)}),
              flush=True)


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    preload()
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
