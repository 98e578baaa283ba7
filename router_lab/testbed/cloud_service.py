"""The cloud as a real HTTP service (aiohttp on loopback), run in its own process by the testbed.

It enforces the cloud config for real: ``units`` concurrent workers behind one FIFO queue
(more than ``queue_limit`` waiting → HTTP 503), fixed one-minute rate-limit windows (→ HTTP 429),
the service time of each request (an LLM profile streams ``tokens_out`` tokens after the time to
first token), and the cloud model's real output when it has one (digits: the RBF SVM in
onnxruntime); otherwise the recorded outcome.  It counts what it received, by its own table of
which rows are sensitive, so a test can prove no sensitive request reached it.

    python -m router_lab.testbed.cloud_service SPEC.json     # listens on the socket fd in SPEC
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import json
import os
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from router_lab.testbed.clock import (
    calibrate,
    reset_wake_stats,
    run_precise,
    sleep_until,
    wake_summary,
)

PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 0.2
STREAM_FLUSH_NS = 2_000_000  # an LLM stream writes the tokens due at most every 2 ms (real)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux), and check it now."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parent watch below still ends us
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


class FifoUnits:
    """``units`` workers sharing one FIFO queue of at most ``queue_limit`` waiting requests.

    A unit is free from its last request's *scheduled* end (as hardware would be), not from when
    that request's handler happened to wake: a late wake-up must not delay the requests behind it,
    nor an early one (timers aim early by their mean lateness) let the next start too soon."""

    def __init__(self, units: int, queue_limit: int | None) -> None:
        self.idle = [0] * units  # heap: when each idle unit became free (monotonic ns)
        self.queue_limit = queue_limit
        self.waiting: deque[asyncio.Future[int]] = deque()

    def full(self) -> bool:
        return self.queue_limit is not None and len(self.waiting) >= self.queue_limit

    async def acquire(self) -> int:
        """Wait for a unit; the time it is free from (the request starts at max(entry, that))."""
        if self.idle and not self.waiting:
            return heapq.heappop(self.idle)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        return await future  # release() hands its unit over directly: FIFO, no barging

    def release(self, free_at: int) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(free_at)
                return
        heapq.heappush(self.idle, free_at)


class CloudService:
    """State of one run of the service: the queue, the rate-limit window, the model, the counts."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.units = FifoUnits(int(spec["units"]), spec["queue_limit"])
        self.t0_ns = int(spec["t0_ns"])
        self.window_ns = int(spec["window_ns"])
        self.rpm = spec["rate_limit_rpm"]
        self.window, self.window_count = -1, 0
        self.tpot_ns = int(spec["tpot_ns"])
        self.llm = bool(spec["llm"])
        tables = np.load(spec["tables_path"])
        self.sensitive = tables["sensitive"].astype(bool)
        self.quality = tables["cloud_quality"].astype(np.float64)
        self.labels = tables["label"] if "label" in tables.files else None
        self.session = None
        if spec.get("model_path"):
            import onnxruntime as ort

            from router_lab.runtime.device_router import session_options

            self.session = ort.InferenceSession(Path(spec["model_path"]).read_bytes(), session_options(1),
                                                providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name
        self.counts = {"received": 0, "received_sensitive": 0, "answered": 0, "rejected_429": 0,
                       "rejected_503": 0, "bad_requests": 0}
        self.max_requests = int(spec["max_requests"])

    def answer(self, body: dict[str, Any]) -> tuple[Any, float]:
        """The model's label and its quality for this row (the recorded outcome without a model)."""
        row = int(body["row"])
        if self.session is not None and body.get("pixels") is not None:
            x = np.asarray(body["pixels"], dtype=np.float32).reshape(1, -1)
            label = self.session.run(None, {self.input_name: x})[0].reshape(-1)[0].item()
            quality = float(self.labels is not None and label == int(self.labels[row]))
            return label, quality
        return None, float(self.quality[row])

    async def infer(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
            row = int(body["row"])
            service_ns = int(body["service_ns"])
            arrive_ns = int(body.get("arrive_ns", 0))
            if not 0 <= row < len(self.sensitive) or service_ns < 0:
                raise ValueError("row or service out of range")
        except (ValueError, KeyError, TypeError):
            self.counts["bad_requests"] += 1
            return web.Response(status=400, text="bad request")
        self.counts["received"] += 1
        self.counts["received_sensitive"] += int(self.sensitive[row])
        # The upload is in transit until its scheduled end (``arrive_ns``, set by the client's shaper;
        # the real transport counted toward it): only then does the request reach the service.
        await sleep_until(arrive_ns)
        enter_ns = time.monotonic_ns()
        if self.counts["received"] > self.max_requests:
            return web.json_response({"enter_ns": enter_ns, "budget_spent": True}, status=503)
        if self.rpm is not None:
            window = (enter_ns - self.t0_ns) // self.window_ns
            if window != self.window:
                self.window, self.window_count = window, 0
            self.window_count += 1
            if self.window_count > self.rpm:
                self.counts["rejected_429"] += 1
                return web.json_response({"enter_ns": enter_ns}, status=429)
        if self.units.full():
            self.counts["rejected_503"] += 1
            return web.json_response({"enter_ns": enter_ns}, status=503)
        start_ns = max(enter_ns, await self.units.acquire())  # never before the unit is free
        free_at = start_ns + service_ns
        try:
            label, quality = self.answer(body)  # real compute counts toward the service time
            stamps = {"enter_ns": enter_ns, "start_ns": start_ns, "label": label, "quality": quality}
            if self.llm:
                return await self.stream(request, start_ns, service_ns, int(body.get("tokens_out", 0)), stamps)
            await sleep_until(free_at)
            stamps["done_ns"] = time.monotonic_ns()
        finally:
            self.units.release(free_at)  # its scheduled end, whether this handler woke early or late
        self.counts["answered"] += 1
        return web.json_response(stamps)

    async def stream(self, request: web.Request, start_ns: int, service_ns: int, tokens_out: int,
                     stamps: dict[str, Any]) -> web.StreamResponse:
        """Stream ``tokens_out`` tokens: the first after the time to first token, then one per TPOT.

        Token k is due at a fixed deadline (start + ttft + k * tpot), so timer jitter does not add up.
        """
        ttft_ns = max(0, service_ns - tokens_out * self.tpot_ns)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = 0
        first_due = start_ns + ttft_ns
        while sent < tokens_out:
            now = time.monotonic_ns()
            due = 1 + (now - first_due) // self.tpot_ns if now >= first_due else 0
            due = min(tokens_out, max(due, 0))
            if due > sent:
                await response.write(b"t\n" * (due - sent))
                sent = due
            if sent < tokens_out:
                next_due = first_due + sent * self.tpot_ns
                if next_due - time.monotonic_ns() > STREAM_FLUSH_NS:
                    await sleep_until(next_due)
                else:  # a plain pause (not aimed early): a stream never spins and starves the others
                    await asyncio.sleep(STREAM_FLUSH_NS / 1e9)
        await sleep_until(start_ns + service_ns)
        stamps["done_ns"] = time.monotonic_ns()
        self.counts["answered"] += 1
        await response.write(("#" + json.dumps(stamps) + "\n").encode())  # the stamps, last
        await response.write_eof()
        return response

    async def stats(self, request: web.Request) -> web.Response:
        """The counts, and the service's own timer lateness (its holds: uploads, service times)."""
        return web.json_response({**self.counts, "wake": wake_summary()})

    async def start(self, request: web.Request) -> web.Response:
        """A new replication: its time origin (for the rate-limit windows) and fresh counts."""
        body = json.loads(await request.read())
        self.t0_ns = int(body["t0_ns"])
        self.window, self.window_count = -1, 0
        self.counts = dict.fromkeys(self.counts, 0)
        reset_wake_stats()
        return web.json_response({"ok": True})


def make_app(service: CloudService) -> web.Application:
    app = web.Application(client_max_size=4 << 20)
    app.add_routes([web.post("/infer", service.infer), web.get("/stats", service.stats),
                    web.post("/start", service.start)])
    return app


async def serve(spec: dict[str, Any]) -> None:
    service = CloudService(spec)
    app = make_app(service)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket(fileno=int(spec["socket_fd"]))
    site = web.SockSite(runner, sock)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await calibrate()
    print("READY", flush=True)
    deadline = time.monotonic() + float(spec["max_wall_s"])
    parent = int(spec["parent_pid"])
    try:
        while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
            try:
                await asyncio.wait_for(stop.wait(), PARENT_POLL_S)
            except TimeoutError:
                pass
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    die_with_parent(int(spec["parent_pid"]))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run_precise(serve(spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
