"""Bad input to `router-lab testbed`: each a one-line error, exit status 2, no process left behind."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path


def _held_port() -> tuple[socket.socket, int]:
    """A loopback port this process holds for the rest of the test session (the kernel picks a free
    one, so two test processes, or two sessions, never share it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


_HOLDER, HELD_PORT = _held_port()  # busy for the port-in-use case


def hold_port(tmp: Path) -> None:
    """The port-in-use case's setup: HELD_PORT is held by this process since import."""
    assert _HOLDER.fileno() != -1


def tampered_bundle(tmp: Path) -> None:
    """A bundle whose policy.json was edited after its manifest was written."""
    folder = tmp / "bundle"
    folder.mkdir()
    policy = json.dumps({"format": "router_lab.policy", "policy": {"kind": "always_local", "params": {}}})
    (folder / "policy.json").write_text(policy, encoding="utf-8")
    manifest = {"format": "router_lab.bundle", "bundle_version": 1,
                "files": [{"file": "policy.json", "role": "policy",
                           "sha256": hashlib.sha256(b"something else").hexdigest(),
                           "size_bytes": len(policy)}]}
    (folder / "bundle.manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


CASES: list[dict] = [
    {"id": "testbed_port_in_use", "setup": "hold_port",
     "args": ["testbed", "policy=always_local", "sim.n_requests=20", f"testbed.cloud_port={HELD_PORT}"],
     "expect": ["testbed.cloud_port", f"127.0.0.1:{HELD_PORT} is in use"]},
    {"id": "testbed_load_too_high_for_generator",
     "args": ["testbed", "policy=always_cloud", "workload.rate_per_s=50000", "sim.n_requests=5000",
              "cloud.queue_limit=10", "device.queue_limit=10"],
     "expect": ["real req/s", "testbed.max_rate_per_s", "raise testbed.time_scale"]},
    {"id": "testbed_bundle_fails_verification", "setup": "tampered_bundle",
     "args": ["testbed", "bundle={tmp}/bundle", "sim.n_requests=20"],
     "expect": ["bundle"]},
    {"id": "testbed_host_not_loopback",
     "args": ["testbed", "testbed.host=192.0.2.1", "sim.n_requests=20"],
     "expect": ["testbed.host", "loopback"]},
    {"id": "testbed_bad_time_scale",
     "args": ["testbed", "testbed.time_scale=0", "sim.n_requests=20"],
     "expect": ["testbed.time_scale", "positive"]},
]
