"""Start and stop what the testbed runs: the cloud service process, on a loopback socket we bind.

The parent binds the port itself (so "port in use" is a clear one-line error before anything
starts) and hands the socket to the child.  The child dies with its parent (PR_SET_PDEATHSIG and a
parent watch), and :class:`CloudProcess` stops it on every exit path: return, error, Ctrl-C and
SIGTERM (turned into an exception by :func:`sigterm_as_exit` while the testbed runs).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from router_lab.errors import RouterLabError

LOOPBACK_NAMES = {"localhost": "127.0.0.1"}
STOP_GRACE_S = 3.0


def loopback_host(host: str) -> str:
    """``host`` as a loopback IP address, or a one-line error: the testbed never leaves the machine."""
    address = LOOPBACK_NAMES.get(host, host)
    try:
        if ipaddress.ip_address(address).is_loopback:
            return address
    except ValueError:
        pass
    raise RouterLabError(f"testbed.host: got {host!r}; expected a loopback address (127.0.0.1, ::1 or localhost)")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port); in use → one-line error."""
    if not 0 <= port <= 65535:
        raise RouterLabError(f"testbed.cloud_port: got {port}; expected 0 (any free port) or 1..65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise RouterLabError(f"testbed.cloud_port: {host}:{port} is in use; expected a free port "
                                 "(or 0 for any free port)") from None
        raise RouterLabError(f"testbed.cloud_port: cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


class SigTerm(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks stop the children."""


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise SigTerm()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class CloudProcess:
    """The cloud service child process; a context manager that always stops it."""

    def __init__(self, spec: dict[str, Any], host: str, port: int, work_dir: Path,
                 startup_timeout_s: float) -> None:
        self.sock = bind_socket(host, port)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.spec = {**spec, "socket_fd": self.sock.fileno(), "parent_pid": os.getpid()}
        self.spec_path = work_dir / "cloud_spec.json"
        self.spec_path.write_text(json.dumps(self.spec), encoding="utf-8")
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> CloudProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router_lab.testbed.cloud_service", str(self.spec_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            pass_fds=(self.sock.fileno(),), env=env)
        self.sock.close()  # the child owns it now
        deadline = time.monotonic() + self.startup_timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.1):
                    line = self.proc.stdout.readline()
                    if line.strip() == b"READY":
                        return
                    if not line:  # the child exited
                        break
                if self.proc.poll() is not None:
                    break
        err = self.proc.stderr.read().decode(errors="replace").strip().splitlines() if self.proc.poll() is not None else []
        raise RouterLabError(f"testbed: the cloud service did not start within {self.startup_timeout_s:g} s "
                             f"({err[-1] if err else 'no output'}); see testbed.startup_timeout_s")

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_GRACE_S)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
