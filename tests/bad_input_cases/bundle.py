"""Bad routing bundles and replay inputs: one line naming the file or field, exit 2."""

from __future__ import annotations

import json
from pathlib import Path


def not_a_bundle(tmp: Path) -> None:
    (tmp / "folder").mkdir()
    (tmp / "folder" / "policy.json").write_text("{}")


def bad_manifest(tmp: Path) -> None:
    (tmp / "b").mkdir()
    (tmp / "b" / "bundle.manifest.json").write_text(json.dumps({"format": "router_lab.bundle",
                                                                "bundle_version": 1, "files": []}))


def future_manifest(tmp: Path) -> None:
    (tmp / "b").mkdir()
    (tmp / "b" / "bundle.manifest.json").write_text(json.dumps({"format": "router_lab.bundle",
                                                                "bundle_version": 9, "files": []}))


def policy_without_manifest_entry(tmp: Path) -> None:
    (tmp / "b").mkdir()
    data = b'{"format": "router_lab.policy"}'
    (tmp / "b" / "policy.json").write_bytes(data)
    import hashlib

    entry = {"file": "policy.json", "role": "policy", "sha256": hashlib.sha256(data).hexdigest(),
             "size_bytes": len(data)}
    (tmp / "b" / "bundle.manifest.json").write_text(json.dumps({"format": "router_lab.bundle",
                                                                "bundle_version": 1, "files": [entry]}))


def empty_run(tmp: Path) -> None:
    (tmp / "run").mkdir()


CASES = [
    {"id": "simulate-bundle-missing", "args": ["simulate", "bundle={tmp}/nope"],
     "expect": ["nope", "not a folder"]},
    {"id": "simulate-bundle-no-manifest", "args": ["simulate", "bundle={tmp}/folder"], "setup": "not_a_bundle",
     "expect": ["bundle.manifest.json", "no such file"]},
    {"id": "simulate-bundle-empty-file-list", "args": ["simulate", "bundle={tmp}/b"], "setup": "bad_manifest",
     "expect": ["bundle.manifest.json", "files"]},
    {"id": "simulate-bundle-future-version", "args": ["simulate", "bundle={tmp}/b"], "setup": "future_manifest",
     "expect": ["bundle_version", "9"]},
    {"id": "simulate-bundle-invalid-policy", "args": ["simulate", "bundle={tmp}/b"],
     "setup": "policy_without_manifest_entry", "expect": ["policy.json", "schema_version"]},
    {"id": "replay-without-bundle", "args": ["replay", "{tmp}/run"], "setup": "empty_run",
     "expect": ["bundle=PATH"]},
    {"id": "replay-not-a-run", "args": ["replay", "{tmp}/run", "bundle={tmp}/b"], "setup": "empty_run",
     "expect": ["not a folder"]},
    {"id": "export-oracle-refused", "args": ["export", "policy=oracle"], "expect": ["oracle", "not deployable"]},
    {"id": "export-oracle-inside-load-aware", "args": ["export", "policy=load_aware", "policy.inner.name=oracle"],
     "expect": ["oracle", "not deployable"]},
    {"id": "export-learned-without-router", "args": ["export", "policy=budget"], "expect": ["export.run_dir="]},
]
