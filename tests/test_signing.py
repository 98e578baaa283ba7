"""Optional authenticity: Ed25519 signatures over bytes (sign_bytes / verify_bytes), signed export
manifests (`export sign_key=…`) and DeviceRouter.load(trusted_keys=…) refusing anything else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from router_lab.errors import RouterLabError
from router_lab.export.commands import write_model
from router_lab.export.convert import RouterSpec, convert_router
from router_lab.runtime import DeviceRouter
from router_lab.runtime.manifest import manifest_path
from router_lab.runtime.signing import generate_keypair, sign_bytes, verify_bytes
from router_lab.train.artifacts import save_trained_router
from router_lab.train.fit import train_router


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    private, public = generate_keypair(root / "ours")
    other_private, other_public = generate_keypair(root / "theirs")
    return {"private": private, "public": public, "other_private": other_private,
            "other_public": other_public}


def test_good_signature_verifies_and_is_a_plain_dict(keys) -> None:
    data = b'{"sha256": "abc"}\n'
    signature = sign_bytes(data, keys["private"])
    assert set(signature) == {"algorithm", "key_id", "signature"} and signature["algorithm"] == "ed25519"
    json.dumps(signature)  # storable in any JSON manifest
    verify_bytes(data, signature, [keys["public"]])
    verify_bytes(data, signature, [keys["other_public"], keys["public"].read_bytes()])  # bytes too


def test_wrong_key_tampered_data_and_malformed_signatures_are_refused(keys) -> None:
    data = b"bundle manifest"
    signature = sign_bytes(data, keys["private"])
    with pytest.raises(RouterLabError, match="m.json: signed by key .* not one of the 1 trusted key"):
        verify_bytes(data, signature, [keys["other_public"]], source="m.json")
    with pytest.raises(RouterLabError, match="does not verify"):
        verify_bytes(data + b" ", signature, [keys["public"]])
    forged = {**signature, "signature": sign_bytes(data, keys["other_private"])["signature"]}
    with pytest.raises(RouterLabError, match="does not verify"):
        verify_bytes(data, forged, [keys["public"]])
    for bad, expected in [({**signature, "algorithm": "rsa"}, "algorithm is 'rsa'"),
                          ({**signature, "signature": "!!"}, "not base64"),
                          ("sig", "algorithm is 'str'")]:
        with pytest.raises(RouterLabError, match=expected):
            verify_bytes(data, bad, [keys["public"]])
    with pytest.raises(RouterLabError, match="no trusted public keys"):
        verify_bytes(data, signature, [])


def test_bad_key_files_are_one_line_errors(keys, tmp_path) -> None:
    not_pem = tmp_path / "x.key"
    not_pem.write_text("hello")
    with pytest.raises(RouterLabError, match="x.key: not an unencrypted PEM private key"):
        sign_bytes(b"d", not_pem)
    with pytest.raises(RouterLabError, match="nope.key: no such private key file"):
        sign_bytes(b"d", tmp_path / "nope.key")
    with pytest.raises(RouterLabError, match="not a PEM public key"):
        verify_bytes(b"d", sign_bytes(b"d", keys["private"]), [keys["private"]])
    with pytest.raises(RouterLabError, match="already exists"):
        generate_keypair(keys["private"].parent)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_generated_keys_work(tmp_path) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True,
                   capture_output=True)
    verify_bytes(b"x", sign_bytes(b"x", private), [public])


@pytest.fixture(scope="module")
def trained(digits):
    return train_router(digits, None, None, "input", seed=0)


@pytest.fixture(scope="module")
def model_bytes(trained) -> bytes:
    return convert_router(RouterSpec.from_trained(trained)).SerializeToString()


def test_signed_export_loads_with_its_key_and_without_keys(model_bytes, keys, tmp_path) -> None:
    target = write_model(tmp_path / "router.onnx", model_bytes, "router", sign_key=keys["private"])
    assert "signature" in json.loads(manifest_path(target).read_text())
    assert DeviceRouter.load(target, trusted_keys=[keys["public"]]).threshold > 0
    assert DeviceRouter.load(target).threshold > 0  # no keys: as before (integrity checks only)


def test_wrong_key_and_unsigned_are_refused_naming_the_manifest(model_bytes, keys, tmp_path) -> None:
    signed = write_model(tmp_path / "a" / "router.onnx", model_bytes, "router", sign_key=keys["other_private"])
    with pytest.raises(RouterLabError, match=rf"{manifest_path(signed)}: signed by key .* not one of"):
        DeviceRouter.load(signed, trusted_keys=[keys["public"]])
    unsigned = write_model(tmp_path / "b" / "router.onnx", model_bytes, "router")
    with pytest.raises(RouterLabError, match=rf"{manifest_path(unsigned)}: unsigned, but trusted keys"):
        DeviceRouter.load(unsigned, trusted_keys=[keys["public"]])


def test_tampering_after_signing_is_refused(model_bytes, keys, tmp_path) -> None:
    target = write_model(tmp_path / "router.onnx", model_bytes, "router", sign_key=keys["private"],
                         source_router="/trusted/run")
    manifest = json.loads(manifest_path(target).read_text())
    # swap the model and re-forge the manifest's hash and size, keeping the old signature
    other = bytearray(model_bytes)
    other[-1] ^= 1
    target.write_bytes(bytes(other))
    forged = {**manifest, "sha256": __import__("hashlib").sha256(bytes(other)).hexdigest()}
    manifest_path(target).write_text(json.dumps(forged))
    with pytest.raises(RouterLabError, match="does not verify"):
        DeviceRouter.load(target, trusted_keys=[keys["public"]])
    # any other field too
    target.write_bytes(model_bytes)
    manifest_path(target).write_text(json.dumps({**manifest, "source_router": "/evil"}))
    with pytest.raises(RouterLabError, match="does not verify"):
        DeviceRouter.load(target, trusted_keys=[keys["public"]])
    manifest_path(target).write_text(json.dumps(manifest))
    DeviceRouter.load(target, trusted_keys=[keys["public"]])


def test_runtime_imports_cryptography_only_when_keys_are_given(model_bytes, keys, tmp_path) -> None:
    signed = write_model(tmp_path / "router.onnx", model_bytes, "router", sign_key=keys["private"])
    code = ("import sys\nfrom router_lab.runtime import DeviceRouter\n"
            f"DeviceRouter.load({str(signed)!r})\nprint('cryptography' in sys.modules)\n"
            f"DeviceRouter.load({str(signed)!r}, trusted_keys=[{str(keys['public'])!r}])\n"
            "print('cryptography' in sys.modules, 'sklearn' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "False"]


def test_export_command_signs_and_a_bad_key_writes_nothing(trained, keys, cli, datasets_dir, tmp_path) -> None:
    run_dir = tmp_path / "train"
    save_trained_router(trained, run_dir)
    quick = [f"datasets_dir={datasets_dir}", "export.latency_calls=50", "export.batch_calls=2"]
    out = tmp_path / "export"
    done = cli("export", f"run_dir={run_dir}", f"out={out}", f"sign_key={keys['private']}", *quick)
    assert done.returncode == 0, done.stderr
    for name in ("router.onnx", "device_graph.onnx"):
        assert DeviceRouter.load(out / name, trusted_keys=[keys["public"]])
    bad_out = tmp_path / "bad"
    bad = cli("export", f"run_dir={run_dir}", f"out={bad_out}", f"sign_key={tmp_path / 'nope.key'}", *quick)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and "nope.key: no such private key file" in lines[0]
    assert not bad_out.exists()
