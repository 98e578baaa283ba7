"""One live replication: open-loop load → routing → device worker pool / shaped network → cloud service.

The run replays the simulator's draws for what the environment supplies (arrival times, rows,
device service times, network delays, lost attempts, outages; ``router_lab.sim.draws``), so sim
and live see the same requests and differ only by what the real system adds.  Everything else is
real: the routing policy's decisions on live signals, the device model in onnxruntime, asyncio
timers, HTTP to the cloud service, its queue, rate limit and model.  Times are taken with
``time.monotonic_ns`` (one clock for both processes) at the simulator's points and converted back
to configured time (÷ ``time_scale``) into the simulator's :class:`Timeline` and :class:`Records`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import numpy as np

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.policies.base import Route
from router_lab.runtime.policy import REASON_CODES, Signals
from router_lab.runtime.policy import Outcome as Learned
from router_lab.sim.draws import (
    NEVER,
    NS_PER_MS,
    NS_PER_S,
    Draws,
    RowSizes,
    attempts_begun,
    retry_ns,
)
from router_lab.sim.records import (
    FAIL_ERRORS,
    DecisionLog,
    Outcome,
    Records,
    Timeline,
    cost_table,
    finish,
)
from router_lab.sim.scenario import Scenario
from router_lab.sim.stations import Battery
from router_lab.testbed.clock import calibrate, sleep_until, wake_bias_ns
from router_lab.testbed.models import LiveModels
from router_lab.testbed.routing import LiveRouter

LOCAL, CLOUD, CASCADE = int(Route.LOCAL), int(Route.CLOUD), int(Route.CASCADE)
ANSWERED_BY = {Outcome.LOCAL: "local", Outcome.FALLBACK: "local", Outcome.CLOUD: "cloud",
               Outcome.CASCADE: "cloud"}
START_LEAD_S = 0.3  # real seconds between setting the time origin and the first arrival
MAX_CONNECTIONS = 256  # the client's HTTP connection pool (select() handles < 1024 descriptors)


async def post_infer(http: aiohttp.ClientSession, url: str, body: dict[str, Any],
                     llm: bool) -> tuple[int, dict[str, Any]]:
    """POST one request to the cloud service; its status and stamps.  An LLM answer streams its
    tokens (one line each) and then the stamps: the client counts the tokens and stamps the arrival
    of the first and the last (``tokens_received``, ``first_token_ns``, ``last_token_ns``)."""
    async with http.post(f"{url}/infer", data=json.dumps(body)) as resp:
        if resp.status != 200 or not llm:
            return resp.status, await resp.json(content_type=None)
        tokens, first, last_token, stamps = 0, None, None, b""
        async for line in resp.content:  # tokens stream in; the stamps come last
            if line.startswith(b"#"):
                stamps = line
                continue
            last_token = time.monotonic_ns()
            first = last_token if first is None else first
            tokens += 1
        return resp.status, {**json.loads(stamps[1:]), "tokens_received": tokens, "first_token_ns": first,
                             "last_token_ns": last_token}


@dataclass
class LiveResult:
    records: Records
    lateness_ns: np.ndarray  # real ns each request was issued after its scheduled time
    cloud_counts: dict[str, int]  # what the cloud service says it received
    wall_s: float
    device_answers_real: int  # device answers from the real model (vs the recorded outcome)
    cloud_answers_real: int


class LiveRun:
    def __init__(self, sc: Scenario, router: LiveRouter, dataset: Dataset, draws: Draws,
                 sensitive: np.ndarray, models: LiveModels, url: str, time_scale: float,
                 drain_s: float) -> None:
        self.sc, self.router, self.dataset, self.d, self.models = sc, router, dataset, draws, models
        self.sensitive, self.url, self.scale, self.drain_s = sensitive, url, time_scale, drain_s
        n = len(draws)
        self.tl = Timeline(n)
        self.arrival_ns = np.zeros(n, dtype=np.int64)  # configured ns, as issued
        self.lateness_ns = np.zeros(n, dtype=np.int64)
        self.route = np.zeros(n, dtype=np.int8)
        self.network_ns = np.zeros(n, dtype=np.int64)
        self.attempts = draws.uplink_attempts.copy()  # as drawn, unless an outage cuts the upload
        self.tokens_received = np.full(n, -1, dtype=np.int64)  # LLM answers: tokens the client read
        self.ttft_ns = np.full(n, -1, dtype=np.int64)  # configured ns from cloud start to the first token
        self.device_correct = np.full(n, np.nan)
        self.cloud_correct = np.full(n, np.nan)
        self.sizes = RowSizes.of(dataset)
        router.prepare(draws.row, dataset)
        self.log = DecisionLog.empty(n) if router.stateful else None
        self.costs = cost_table(sc, self.sizes)
        d = sc.device
        self.battery = None if d.battery_j is None else Battery(d.battery_j, d.idle_w, d.energy_per_inference_j)
        self.n_admitted = 0
        self.device_busy = 0
        self.cloud_in_flight = 0
        self.timeout_ns = None if sc.cloud.timeout_s is None else int(round(sc.cloud.timeout_s * NS_PER_S))
        self.device_session = None
        if models.device_graph is not None:
            self.device_session = models.device_graph.session
            self.device_input = self.device_session.get_inputs()[0].name
        elif models.device_onnx is not None:
            import onnxruntime as ort

            from router_lab.runtime.device_router import session_options

            self.device_session = ort.InferenceSession(models.device_onnx, session_options(1),
                                                       providers=["CPUExecutionProvider"])
            self.device_input = self.device_session.get_inputs()[0].name

    # -- clocks --------------------------------------------------------------------------------
    def cfg(self, t_real_ns: int) -> int:
        """Configured ns since the origin for a real monotonic time."""
        return int(round((t_real_ns - self.t0) / self.scale))

    def real(self, cfg_ns: int | float) -> int:
        """Real monotonic ns for configured ns since the origin."""
        return self.t0 + int(round(cfg_ns * self.scale))

    def span(self, cfg_ns: int | float) -> int:
        return int(round(cfg_ns * self.scale))

    def network_down(self, t_real_ns: int) -> bool:
        return bool(len(self.d.outage_start_ns) and self.d.network_down(self.cfg(t_real_ns)))

    def cut_at(self, begin_real_ns: int, cfg_span_ns: int) -> int | None:
        """Real ns at which an outage cuts a transfer that begins then and lasts ``cfg_span_ns``
        configured ns (the emulated link drops it, as the simulator's), or None."""
        if not len(self.d.outage_start_ns):
            return None
        begin = self.cfg(begin_real_ns)
        cut = self.d.first_down(begin, begin + cfg_span_ns)
        return None if cut == NEVER else self.real(cut)

    # -- the run -------------------------------------------------------------------------------
    async def run(self) -> LiveResult:
        begin = time.monotonic()
        await calibrate()
        self.wake_bias_ns = wake_bias_ns()
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, force_close=False)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as http:
            self.http = http
            self.t0 = time.monotonic_ns() + int(START_LEAD_S * NS_PER_S)
            async with http.post(f"{self.url}/start", data=json.dumps({"t0_ns": self.t0})) as resp:
                await resp.read()
            self.transport_ns = await self.measure_transport()
            self.queue: asyncio.Queue[tuple[int, asyncio.Future[Any], int]] = asyncio.Queue()
            workers = [asyncio.create_task(self.device_worker()) for _ in range(self.sc.device.units)]
            try:
                tasks = await self.generate()
                last_real = self.real(int(self.d.arrival_ns[-1]))
                remaining = max(0.0, (last_real - time.monotonic_ns()) / 1e9) + self.drain_s
                done, pending = await asyncio.wait(tasks, timeout=remaining)
                for task in pending:
                    task.cancel()
                if pending:
                    raise RouterLabError(f"testbed: {len(pending)} request(s) still in flight "
                                         f"{self.drain_s:g} s after the last arrival; raise testbed.drain_s "
                                         "or lower the load")
                for task in done:
                    task.result()  # a bug in a request's handling surfaces here
            finally:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
            async with http.get(f"{self.url}/stats") as resp:
                counts = await resp.json()
        return LiveResult(self.records(), self.lateness_ns, counts, time.monotonic() - begin,
                          int(np.isfinite(self.device_correct).sum()), int(np.isfinite(self.cloud_correct).sum()))

    async def measure_transport(self, calls: int = 30) -> int:
        """Median real round trip of an empty HTTP call to the service (recorded in testbed.json: the
        loopback transport's own time, which counts toward each shaped transfer)."""
        times = []
        for _ in range(calls):
            t = time.monotonic_ns()
            async with self.http.get(f"{self.url}/stats") as resp:
                await resp.read()
            times.append(time.monotonic_ns() - t)
        return int(np.median(times))

    async def generate(self) -> list[asyncio.Task[None]]:
        """Open loop: issue request i at its scheduled time, whatever the system's state."""
        tasks = []
        arrival = self.d.arrival_ns
        for i in range(len(arrival)):
            target = self.real(int(arrival[i]))
            await sleep_until(target)
            now = time.monotonic_ns()
            self.lateness_ns[i] = now - target
            tasks.append(asyncio.create_task(self.handle(i, now)))
        return tasks

    def signals(self, now: int) -> Signals:
        """What the device sees now: its own units busy and queued, whether the network is up."""
        return Signals(self.cfg(now) / NS_PER_S, self.device_busy, self.queue.qsize(), not self.network_down(now))

    async def handle(self, i: int, t_arrival: int) -> None:
        self.arrival_ns[i] = self.cfg(t_arrival)
        row, sensitive = int(self.d.row[i]), bool(self.sensitive[i])
        if self.router.stateful:
            signals = self.signals(t_arrival)
            route, reason = self.router.decide(i, row, sensitive, signals)
            log = self.log
            log.local_in_flight[i], log.local_queued[i] = signals.local_in_flight, signals.local_queued
            log.network_up[i], log.reason[i] = signals.network_up, REASON_CODES[reason]
        else:
            route, _ = self.router.decide(i, row, sensitive, None)
        self.route[i] = route
        # The router's overhead: its real compute counts toward it, the rest is waited out.
        await sleep_until(t_arrival + self.span(self.sc.device.router_overhead_ms * NS_PER_MS))
        now = time.monotonic_ns()
        if route == CLOUD:
            await self.send(i, now, cascade=False)
        else:
            await self.run_on_device(i, now, cascade=route == CASCADE)
        end, outcome = int(self.tl.end_ns[i]), int(self.tl.outcome[i])
        by = ANSWERED_BY.get(outcome)
        self.router.observe(Learned(end / NS_PER_S, latency_ms=(end - int(self.arrival_ns[i])) / NS_PER_MS,
                                    answered_by=by, cost_usd=float(self.costs[row]) if by == "cloud" else 0.0))

    # -- device --------------------------------------------------------------------------------
    async def run_on_device(self, i: int, now: int, cascade: bool) -> None:
        tl, d = self.tl, self.sc.device
        tl.device_enter_ns[i] = self.cfg(now)
        if d.queue_limit is not None and self.queue.qsize() >= d.queue_limit:
            tl.outcome[i], tl.end_ns[i] = Outcome.REJECTED, self.cfg(now)
            return
        if self.battery is not None and self.battery.empty(self.cfg(now), self.n_admitted):
            tl.outcome[i], tl.end_ns[i] = Outcome.FAILED, self.cfg(now)
            return
        self.n_admitted += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((i, future, now))
        start, done, outputs = await future
        tl.device_start_ns[i], tl.device_done_ns[i] = self.cfg(start), self.cfg(done)
        if cascade and self.router.escalate(i):  # (never a sensitive one: Policy.keep_local)
            await self.send(i, done, cascade=True)
        else:
            tl.end_ns[i] = self.cfg(done)

    async def device_worker(self) -> None:
        """One device unit: take the next request (FIFO), run the model, hold it for its service time.

        The unit starts a request when it is both free and the request is there: at
        max(enqueued, the previous request's scheduled end) — as hardware would.  Starting at the
        worker's own (late) wake-up instead would add the emulator's timer lateness to every
        request behind it in the queue, and starting at an early wake-up (timers aim early by
        their mean lateness) would take it off every one: both divergences measured by sim_vs_live.
        """
        free_at = 0
        while True:
            i, future, enqueued = await self.queue.get()
            start = max(enqueued, free_at)
            self.device_busy += 1
            try:
                outputs = self.device_compute(int(self.d.row[i]), i)
                free_at = start + self.span(int(self.d.device_service_ns[i]))
                await sleep_until(free_at)
            finally:
                self.device_busy -= 1
            future.set_result((start, time.monotonic_ns(), outputs))

    def device_compute(self, row: int, i: int) -> dict[str, Any] | None:
        if self.device_session is None:
            return None
        outputs = self.device_session.run(None, {self.device_input: self.models.pixels[row:row + 1]})
        names = [o.name for o in self.device_session.get_outputs()]
        label = int(np.asarray(outputs[names.index("device_label") if "device_label" in names else 0]).reshape(-1)[0])
        self.device_correct[i] = float(label == int(self.models.labels[row]))
        return {name: np.asarray(value).reshape(-1)[0] for name, value in zip(names, outputs, strict=True)
                if np.asarray(value).ndim <= 2 and np.asarray(value).size == 1}

    # -- network and cloud ---------------------------------------------------------------------
    async def send(self, i: int, at: int, cascade: bool) -> None:
        """Upload request ``i`` at real time ``at`` through the shaped network, to the cloud service."""
        d, tl = self.d, self.tl
        if self.network_down(at):
            await self.fail(i, at, cascade, "network")
            return
        tl.sent[i] = True
        uplink_ns = int(d.uplink_ns[i])
        deadline = None if self.timeout_ns is None else at + self.span(self.timeout_ns)
        cut = self.cut_at(at, uplink_ns)
        if cut is not None:  # an outage begins during the upload: lost then, nothing reaches the service
            self.attempts[i] = attempts_begun(self.cfg(cut) - self.cfg(at), int(d.uplink_attempts[i]),
                                              retry_ns(self.sc))
            await sleep_until(cut)
            self.network_ns[i] = self.cfg(time.monotonic_ns()) - self.cfg(at)
            await self.fail(i, time.monotonic_ns(), cascade, "network")
            return
        if d.uplink_failed[i]:  # every attempt lost: the client gives up after the retries
            await sleep_until(at + self.span(uplink_ns))
            self.network_ns[i] = self.cfg(time.monotonic_ns()) - self.cfg(at)
            await self.fail(i, time.monotonic_ns(), cascade, "network")
            return
        if deadline is not None and uplink_ns >= self.timeout_ns:
            await sleep_until(deadline)
            self.network_ns[i] = self.cfg(deadline) - self.cfg(at)
            await self.fail(i, deadline, cascade, "timeout")
            return
        # Each transfer is held until its scheduled end, measured from its start: lost attempts'
        # retry timeouts, the half RTT and the bytes at the link rate.  The request leaves now and
        # the service holds it until ``arrive`` (the real transport counts toward the configured
        # time, as the device's real compute does toward its service time); only a transport longer
        # than the configured delay, or a late wake-up, adds to it.
        self.cloud_in_flight += 1
        try:
            reply = await self.post(i, deadline, at + self.span(uplink_ns))
        finally:
            self.cloud_in_flight -= 1
        now = time.monotonic_ns()
        if reply is None:  # the client gave up (timeout) or the connection failed
            self.network_ns[i] = self.cfg(now) - self.cfg(at)
            await self.fail(i, now, cascade, "timeout")
            return
        status, stamps = reply
        enter = int(stamps.get("enter_ns", now))
        tl.cloud_enter_ns[i] = self.cfg(enter)
        up = self.cfg(enter) - self.cfg(at)
        # The answer (or the refusal, sent at entry) is held until its scheduled end: when the
        # service sent it plus the download time; its real way back counts toward that.
        sent_back = int(stamps.get("done_ns", enter))
        answer_at = max(now, sent_back + self.span(int(d.downlink_ns[i])))
        cut = self.cut_at(sent_back, int(d.downlink_ns[i]))  # an outage during the way back loses it
        if status == 200:
            tl.cloud_start_ns[i], tl.cloud_done_ns[i] = self.cfg(int(stamps["start_ns"])), self.cfg(sent_back)
        if status != 200 or cut is not None or (deadline is not None and answer_at > deadline):
            # 429 / 503 (the refusal travels back), or lost in an outage, unless the client gives up first
            fail_at, error = (answer_at, "rejected") if status != 200 else (NEVER, "network")
            if cut is not None and cut < fail_at:
                fail_at, error = cut, "network"
            if deadline is not None and deadline <= fail_at:
                fail_at, error = deadline, "timeout"
            await sleep_until(fail_at)
            self.network_ns[i] = up
            await self.fail(i, fail_at if error == "timeout" else time.monotonic_ns(), cascade, error)
            return
        await sleep_until(answer_at)
        end = time.monotonic_ns()
        tl.end_ns[i] = self.cfg(end)
        self.network_ns[i] = up + (self.cfg(end) - self.cfg(int(stamps["done_ns"])))
        tl.outcome[i] = Outcome.CASCADE if cascade else Outcome.CLOUD
        if "tokens_received" in stamps:
            self.tokens_received[i] = int(stamps["tokens_received"])
            if stamps["first_token_ns"] is not None:
                self.ttft_ns[i] = self.cfg(int(stamps["first_token_ns"])) - self.cfg(int(stamps["start_ns"]))
        if stamps.get("label") is not None:
            self.cloud_correct[i] = float(stamps["quality"])

    async def post(self, i: int, deadline: int | None, arrive: int) -> tuple[int, dict[str, Any]] | None:
        """POST request ``i``; the service holds it until ``arrive`` (real ns), its upload's scheduled end."""
        row = int(self.d.row[i])
        body = {"i": i, "row": row, "service_ns": self.span(int(self.d.cloud_service_ns[i])),
                "tokens_out": int(self.sizes.tokens_out[row]), "arrive_ns": arrive}
        if self.models.pixels is not None:
            body["pixels"] = self.models.pixels[row].tolist()
        timeout = None if deadline is None else max(0.0, (deadline - time.monotonic_ns()) / 1e9)
        try:
            return await asyncio.wait_for(self._post(body), timeout)
        except (TimeoutError, aiohttp.ClientError):
            return None

    async def _post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return await post_infer(self.http, self.url, body, bool(self.sc.cloud.llm))

    def llm_summary(self) -> dict[str, float | None]:
        """What the client read of the LLM streams: tokens received vs due, mean time to first token."""
        got = self.tokens_received >= 0
        if not got.any():
            return {}
        due = self.sizes.tokens_out[self.d.row[got]]
        ttft = self.ttft_ns[got & (self.ttft_ns >= 0)]
        return {"llm_answers": int(got.sum()), "llm_tokens_received": int(self.tokens_received[got].sum()),
                "llm_tokens_due": int(due.sum()),
                "llm_ttft_mean_ms": float(ttft.mean() / NS_PER_MS) if len(ttft) else None}

    async def fail(self, i: int, at: int, cascade: bool, error: str) -> None:
        """A cloud attempt failed at real time ``at`` (now; ``error``: rejected, timeout, network):
        the policy learns it, then the request falls back or fails, as in the simulator."""
        if self.log is not None:
            self.log.fail_ns[i], self.log.fail_error[i] = self.cfg(at), FAIL_ERRORS.index(error)
        self.router.observe(Learned(self.cfg(at) / NS_PER_S, cloud_failed=True, error=error))
        tl = self.tl
        if cascade:  # the device's answer is already there
            tl.outcome[i], tl.end_ns[i] = Outcome.FALLBACK, self.cfg(at)
        elif self.sc.sim.on_cloud_failure == "fail":
            tl.outcome[i], tl.end_ns[i] = Outcome.FAILED, self.cfg(at)
        else:
            await self.run_on_device(i, at, cascade=False)
            if tl.outcome[i] == Outcome.LOCAL:
                tl.outcome[i] = Outcome.FALLBACK

    # -- records -------------------------------------------------------------------------------
    def records(self) -> Records:
        draws = replace(self.d, arrival_ns=self.arrival_ns)
        # the shaped upload replays the drawn attempts (loss and retries) of the request
        self.tl.attempts[:] = np.where(self.tl.sent, self.attempts, 0)
        rec = finish(timeline=self.tl, draws=draws, route=self.route, sensitive=self.sensitive, scenario=self.sc,
                     dataset=self.dataset, sensitive_blocked=self.router.sensitive_blocked(), engine="testbed",
                     decision_log=self.log, audit_model=False)
        outcome = rec.outcome
        by_cloud = (outcome == Outcome.CLOUD) | (outcome == Outcome.CASCADE)
        by_device = (outcome == Outcome.LOCAL) | (outcome == Outcome.FALLBACK)
        quality = rec.quality.copy()
        real_device = by_device & np.isfinite(self.device_correct)
        real_cloud = by_cloud & np.isfinite(self.cloud_correct)
        quality[real_device] = self.device_correct[real_device]
        quality[real_cloud] = self.cloud_correct[real_cloud]
        network_ms = (self.network_ns / NS_PER_MS).astype(np.float32)
        network_ms[~rec.sent] = 0.0
        return replace(rec, quality=quality, network_ms=network_ms)


def lateness_summary(lateness_ns: np.ndarray, time_scale: float) -> dict[str, float]:
    """Generator lateness in configured ms (real lateness ÷ time_scale) and in real µs."""
    if lateness_ns.size == 0:
        return {}
    real_us = lateness_ns / 1e3
    p50, p99, mx = np.percentile(real_us, [50, 99, 100])
    return {"lateness_p50_us_real": float(p50), "lateness_p99_us_real": float(p99),
            "lateness_max_us_real": float(mx), "lateness_p99_ms": float(p99 / 1e3 / time_scale),
            "lateness_mean_ms": float(real_us.mean() / 1e3 / time_scale)}

