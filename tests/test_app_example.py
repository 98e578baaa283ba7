"""The README's "Ship it" example runs against a stub cloud service on loopback."""

from __future__ import annotations

import json
import runpy
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from test_bundle import export_bundle, routers  # noqa: F401 - fixture

from router_lab.runtime import Route

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "app.py"


def test_the_readme_shows_the_example_verbatim():
    assert EXAMPLE.read_text() in (REPO / "README.md").read_text()


class StubCloud(BaseHTTPRequestHandler):
    received: list[list[float]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StubCloud.received.append(body["features"])
        payload = json.dumps({"label": 7}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
        pass


@pytest.fixture
def stub_cloud():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubCloud)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StubCloud.received = []
    yield server
    server.shutdown()
    server.server_close()


def test_app_example_routes_calls_the_cloud_and_falls_back(datasets_dir, digits, routers, tmp_path, stub_cloud):  # noqa: F811
    bundle_dir = export_bundle(datasets_dir, routers, "learned", tmp_path / "bundle")
    url = f"http://127.0.0.1:{stub_cloud.server_address[1]}/answer"
    make_app = runpy.run_path(str(EXAMPLE))["make_app"]
    answer, policy = make_app(str(bundle_dir), url)
    x = digits.features(tuple(c for c in digits.feature_columns)).astype(np.float32)[:300]
    sensitive = digits.frame["sensitive"].to_numpy(dtype=bool)[:300]
    sent = []
    for row, flag in zip(x, sensitive, strict=True):
        label, decision = answer(row, sensitive=bool(flag))
        sent.append(decision.route == Route.CLOUD)
        assert label == 7 if sent[-1] else 0 <= label <= 9
    assert 0 < sum(sent) < 300 and len(StubCloud.received) == sum(sent)
    assert not np.asarray(sent)[sensitive].any()  # the stub never saw a sensitive request
    assert policy.state()["spent_usd"] == 0.0 and policy.state()["n_observed"] == 300
    # the cloud goes away: cloud decisions fall back to the device, and the policy hears of it
    stub_cloud.shutdown()
    stub_cloud.server_close()
    answer, policy = make_app(str(bundle_dir), url, timeout_s=0.5)
    cloud_rows = x[np.asarray(sent)][:5]
    for row in cloud_rows:
        label, decision = answer(row)
        assert decision.route == Route.CLOUD and 0 <= label <= 9
    assert policy.state()["cloud_failures"] == len(cloud_rows)
