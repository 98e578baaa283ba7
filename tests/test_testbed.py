"""The live testbed on loopback: a short real run, process cleanup on kill/SIGTERM, and bad input.

Exact properties (every request one outcome, the cloud service's own count of sensitive requests is
0, the same files and columns as `simulate`) and generous tolerances on medians only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.bad_input_cases import testbed as bad_cases

N = 80
FAST = [f"sim.n_requests={N}", "testbed.time_scale=0.5", "testbed.max_lateness_ms=1000", "seed=0"]
# A loaded 2-core machine adds a few real ms per request (timer wake-ups, HTTP): generous slack.
SLACK_MS = 40.0
SERVICE_MODULE = "router_lab.testbed.cloud_service"


def service_pids(parent: int | None = None) -> list[int]:
    """Processes running the cloud service (children of ``parent`` if given)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if SERVICE_MODULE not in cmdline:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if parent is None or ppid == parent:
            pids.append(int(entry.name))
    return pids


def alive(pid: int) -> bool:
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state  # a zombie has exited


def run_main(*args: str) -> int:
    """`router-lab ARGS` in this process (saves an interpreter start per call)."""
    from router_lab.cli import main

    try:
        return main(list(args))
    except SystemExit as exc:  # an error inside the Hydra job exits from there
        return int(exc.code)


@pytest.fixture(scope="module")
def live_and_sim(tmp_path_factory, digits, datasets_dir) -> tuple[Path, Path]:
    """One short live run and the simulation of the same config (always_cloud, N requests)."""
    out = tmp_path_factory.mktemp("testbed")
    data = f"datasets_dir={datasets_dir}"
    assert run_main("testbed", "policy=always_cloud", data, *FAST, f"hydra.run.dir={out / 'live'}") == 0
    assert run_main("simulate", "policy=always_cloud", data, f"sim.n_requests={N}", "seed=0",
                    f"hydra.run.dir={out / 'sim'}") == 0
    return out / "live", out / "sim"


def test_every_request_ends_in_exactly_one_outcome(live_and_sim):
    live, _ = live_and_sim
    metrics = json.loads((live / "metrics.json").read_text())
    frame = pd.read_parquet(live / "requests.parquet")
    assert len(frame) == N == metrics["n_requests"]
    assert frame["outcome"].notna().all()
    assert sum(metrics["outcomes"].values()) == N
    assert (frame["latency_ms"] >= 0).all()
    assert metrics["accounting_violations"] is None  # the model's exact checks do not apply live
    sent = frame["sent"].to_numpy()
    assert (frame["offdevice_bytes"].to_numpy()[sent] > 0).all() and (frame["offdevice_bytes"].to_numpy()[~sent] == 0).all()


def test_no_sensitive_request_reached_the_cloud_service_by_its_own_count(live_and_sim):
    live, _ = live_and_sim
    frame = pd.read_parquet(live / "requests.parquet")
    info = json.loads((live / "testbed.json").read_text())
    sensitive = frame["sensitive"].to_numpy()
    assert sensitive.any()  # always_cloud would send these if pinning failed: the check can fail
    assert info["cloud_received_sensitive"] == 0
    assert not frame.loc[sensitive, "sent"].any()
    answered = int(frame["outcome"].isin(["cloud", "cascade"]).sum())
    assert answered <= info["cloud_received"] <= int(frame["sent"].sum())
    assert answered >= 0.8 * N  # Wi-Fi, an idle GPU pool: nearly every non-sensitive request answered


def test_live_records_match_the_simulators_schema_and_medians(live_and_sim):
    live, sim = live_and_sim
    live_frame, sim_frame = pd.read_parquet(live / "requests.parquet"), pd.read_parquet(sim / "requests.parquet")
    assert list(live_frame.columns) == list(sim_frame.columns)
    live_m, sim_m = (json.loads((p / "metrics.json").read_text()) for p in (live, sim))
    assert set(sim_m) <= set(live_m)
    assert live_m["engine"] == "testbed"
    assert live_m["cloud_fraction"] == sim_m["cloud_fraction"]  # same draws, same (stateless) routes
    # Generous: real timers, HTTP and a shared machine add to every stage.
    assert abs(live_m["latency_p50_ms"] - sim_m["latency_p50_ms"]) <= 0.5 * sim_m["latency_p50_ms"] + SLACK_MS
    for stage in ("cloud_service_ms", "network_ms"):
        live_med = live_frame.loc[live_frame["outcome"] == "cloud", stage].median()
        sim_med = sim_frame.loc[sim_frame["outcome"] == "cloud", stage].median()
        assert abs(live_med - sim_med) <= 0.5 * sim_med + SLACK_MS, stage


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "sigterm"])
def test_stopping_the_parent_leaves_no_process_behind(sig, digits, datasets_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen(
        [sys.executable, "-m", "router_lab", "testbed", "policy=always_cloud", f"datasets_dir={datasets_dir}",
         "sim.n_requests=5000", "testbed.time_scale=0.1", "testbed.max_lateness_ms=1000"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        children: list[int] = []
        while not children and time.monotonic() < deadline and parent.poll() is None:
            children = service_pids(parent.pid)
            time.sleep(0.1)
        assert children, "the cloud service never started"
        time.sleep(1.0)  # let the load run
        parent.send_signal(sig)
        parent.wait(30)
        if sig == signal.SIGTERM:
            assert parent.returncode == 128 + signal.SIGTERM
            assert "Traceback" not in parent.stderr.read().decode()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in children if alive(pid)] == []
        assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("metrics.json"))
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.parametrize("case", bad_cases.CASES, ids=[c["id"] for c in bad_cases.CASES])
def test_bad_input_is_one_line_exit_2_and_no_process_left(case, digits, datasets_dir, tmp_path, monkeypatch,
                                                           capsys):
    if case.get("setup"):
        getattr(bad_cases, case["setup"])(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = set(service_pids())
    args = [a.replace("{tmp}", str(tmp_path)) for a in case["args"]]
    assert run_main(*args, f"datasets_dir={datasets_dir}") == 2
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("router-lab: error: "), stderr
    for expected in case["expect"]:
        assert expected in lines[0]
    assert set(service_pids()) - before == set()
    assert not list(tmp_path.rglob("metrics.json"))


def test_profile_writes_service_times_the_simulator_reads(digits, datasets_dir, tmp_path, monkeypatch, capsys):
    from router_lab.cli import main

    monkeypatch.chdir(tmp_path)
    data = f"datasets_dir={datasets_dir}"
    assert main(["profile", data, "testbed.profile_calls=50", "hydra.run.dir=prof"]) == 0
    summary = json.loads((tmp_path / "prof" / "profile.json").read_text())
    for role in ("device", "cloud"):
        measured = pd.read_csv(tmp_path / "prof" / f"{role}_profile.csv")["service_ms"]
        assert len(measured) == 50 and (measured > 0).all()
        assert summary[role]["p50_ms"] == pytest.approx(measured.median())
    profile_csv = tmp_path / "prof" / "device_profile.csv"
    assert main(["simulate", data, "policy=always_local", "sim.n_requests=200", "device.service=profile",
                 f"device.profile_path={profile_csv}", "hydra.run.dir=sim"]) == 0
    frame = pd.read_parquet(tmp_path / "sim" / "requests.parquet")
    measured = np.sort(pd.read_csv(profile_csv)["service_ms"].to_numpy())
    simulated = frame["device_service_ms"].dropna().to_numpy(dtype=np.float64)
    nearest = np.abs(measured[np.clip(np.searchsorted(measured, simulated), 0, len(measured) - 1)] - simulated)
    nearest = np.minimum(nearest, np.abs(measured[np.clip(np.searchsorted(measured, simulated) - 1, 0, None)]
                                         - simulated))
    assert len(simulated) > 0 and (nearest <= 1e-4).all()  # every service time is a measured one
    capsys.readouterr()


def test_report_shows_a_testbed_run_beside_a_simulated_one(live_and_sim, capsys):
    live, _ = live_and_sim
    assert run_main("report", str(live.parent)) == 0
    summary = pd.read_csv(live.parent / "report" / "summary.csv")
    assert sorted(summary["command"]) == ["simulate", "testbed"]
    assert summary["latency_p50_ms"].notna().all()
    capsys.readouterr()


def test_a_shipped_bundle_runs_live_through_the_runtime(digits, datasets_dir, tmp_path, capsys):
    data = f"datasets_dir={datasets_dir}"
    assert run_main("export", "policy=always_local", data, f"hydra.run.dir={tmp_path / 'bundle'}") == 0
    assert run_main("testbed", f"bundle={tmp_path / 'bundle'}", data, "sim.n_requests=40", "testbed.time_scale=0.25",
                    "testbed.max_lateness_ms=1000", f"hydra.run.dir={tmp_path / 'live'}") == 0
    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text())
    info = json.loads((tmp_path / "live" / "testbed.json").read_text())
    assert metrics["bundle_sha256"] and info["routing"] == f"bundle {metrics['bundle_sha256']}"
    assert metrics["outcomes"]["local"] == 40 and info["cloud_received"] == 0  # the bundle keeps all local
    capsys.readouterr()


def test_report_of_a_sim_vs_live_folder_embeds_each_scenarios_cdf(live_and_sim, tmp_path, capsys):
    """A sim_vs_live run folder (its table and latencies, here from the fixture's two runs) → report.html
    with one embedded CDF figure per scenario; a scenario without latencies is named as not drawn."""
    from router_lab.report.comparison import LATENCY_FILE, latency_frame
    from router_lab.testbed.sim_vs_live import COLUMNS

    live, sim = live_and_sim
    answered = ["local", "cloud", "cascade", "fallback"]
    ms = {side: (f := pd.read_parquet(p / "requests.parquet")).loc[f["outcome"].isin(answered), "latency_ms"]
          for side, p in (("sim", sim), ("live", live))}
    folder = tmp_path / "sim_vs_live"
    folder.mkdir()
    table = pd.DataFrame([["wifi_cloud", "latency_p50_ms", ms["sim"].median(), ms["live"].median(), 0.0, 1.0, 0.1],
                          ["no_latencies", "latency_p50_ms", 1.0, 1.0, 1.0, 1.0, 0.0]], columns=COLUMNS)
    table.to_csv(folder / "sim_vs_live.csv", index=False)
    latency_frame("wifi_cloud", ms["sim"].to_numpy(), ms["live"].to_numpy(), 500.0).to_parquet(folder / LATENCY_FILE)
    assert run_main("report", str(folder)) == 0
    page = (folder / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1
    assert '<img alt="wifi_cloud: latency CDF, sim vs live" src="data:image/png;base64,' in page
    assert "no_latencies: latency CDF, sim vs live: not drawn" in page
    assert (folder / "report" / "cdf_wifi_cloud.png").stat().st_size > 0
    assert len(pd.read_csv(folder / "report" / "summary.csv")) == 2 and "latency_p50_ms" in page
    capsys.readouterr()


def test_llm_cloud_streams_tokens_out_after_the_time_to_first_token(tmp_path):
    """The cloud service alone (in this process, on loopback): an LLM answer streams ``tokens_out``
    tokens, the first after the time to first token, then one per TPOT; the client counts them and
    stamps the first and last.  Generous tolerances: a loaded machine wakes timers a few ms late."""
    import asyncio

    import aiohttp
    from aiohttp import web

    from router_lab.testbed.clock import calibrate, run_precise
    from router_lab.testbed.cloud_service import CloudService, make_app
    from router_lab.testbed.live import post_infer

    ms = 1_000_000
    ttft_ns, tpot_ns = 40 * ms, 6 * ms
    np.savez(tmp_path / "tables.npz", sensitive=np.zeros(4, dtype=bool), cloud_quality=np.ones(4))
    spec = {"units": 3, "queue_limit": None, "t0_ns": 0, "window_ns": 60_000 * ms, "rate_limit_rpm": None,
            "tpot_ns": tpot_ns, "llm": True, "tables_path": str(tmp_path / "tables.npz"), "model_path": None,
            "max_requests": 10}
    tokens_out = [1, 6, 15]

    async def scenario():
        await calibrate(samples=50)
        service = CloudService(spec)
        runner = web.AppRunner(make_app(service), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with aiohttp.ClientSession() as http:
                bodies = [{"i": k, "row": k, "service_ns": ttft_ns + n * tpot_ns, "tokens_out": n, "arrive_ns": 0}
                          for k, n in enumerate(tokens_out)]  # concurrent streams, one unit each (no queue)
                replies = await asyncio.wait_for(asyncio.gather(*[post_infer(http, url, b, llm=True)
                                                                  for b in bodies]), 10)
                async with http.get(f"{url}/stats") as resp:
                    counts = await resp.json()
        finally:
            await runner.cleanup()
        return replies, counts

    replies, counts = run_precise(scenario())
    assert counts["answered"] == counts["received"] == len(tokens_out)
    for n, (status, stamps) in zip(tokens_out, replies, strict=True):
        assert status == 200
        assert stamps["tokens_received"] == n  # every token, and only the tokens (the stamps are not one)
        ttft = stamps["first_token_ns"] - stamps["start_ns"]
        assert ttft_ns - 2 * ms <= ttft <= ttft_ns + 30 * ms, ttft
        spread = stamps["last_token_ns"] - stamps["first_token_ns"]  # tokens 2..n, one TPOT apart
        assert abs(spread - (n - 1) * tpot_ns) <= 0.3 * (n - 1) * tpot_ns + 30 * ms, spread
        service = stamps["done_ns"] - stamps["start_ns"]
        assert ttft_ns + n * tpot_ns - 2 * ms <= service <= ttft_ns + n * tpot_ns + 30 * ms, service
        assert stamps["last_token_ns"] <= stamps["done_ns"] + 30 * ms
