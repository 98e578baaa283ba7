"""Ed25519 signatures over bytes (a manifest): who made an artifact, not only that it is whole.

    signature = sign_bytes(data, "keys/router_lab.key")          # {"algorithm", "key_id", "signature"}
    verify_bytes(data, signature, ["keys/router_lab.pub"])         # None, or a one-line RouterLabError

Keys are PEM files: ``router-lab keygen out=DIR`` writes ``router_lab.key`` (private, mode 0600)
and ``router_lab.pub``, or ``openssl genpkey -algorithm ed25519 -out router_lab.key`` and
``openssl pkey -in router_lab.key -pubout -out router_lab.pub``.  The ``cryptography`` package is
imported inside these functions only, so the device runtime imports it only when keys are used.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from router_lab.errors import RouterLabError

ALGORITHM = "ed25519"
PRIVATE_KEY_FILE = "router_lab.key"
PUBLIC_KEY_FILE = "router_lab.pub"
KeySource = str | os.PathLike[str] | bytes


def key_id(public_raw: bytes) -> str:
    """A short, stable name of a public key: the first 16 hex digits of SHA-256(raw key)."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _read(source: KeySource, what: str) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, f"{what} (given as bytes)"
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except FileNotFoundError as exc:
        raise RouterLabError(f"{path}: no such {what} file; expected a PEM file "
                             "('router-lab keygen out=DIR' writes one)") from exc
    except OSError as exc:
        raise RouterLabError(f"{path}: cannot read the {what} ({exc.strerror or type(exc).__name__})") from exc


def load_private_key(path: KeySource) -> Any:
    """An Ed25519 private key from a PEM file (unencrypted); one-line errors."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data, name = _read(path, "private key")
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise RouterLabError(f"{name}: not an unencrypted PEM private key ({str(exc)[:120]}); expected "
                             "the file 'openssl genpkey -algorithm ed25519' or 'router-lab keygen' writes") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise RouterLabError(f"{name}: a {type(key).__name__}; expected an Ed25519 key")
    return key


def load_public_key(source: KeySource) -> Any:
    """An Ed25519 public key from a PEM file or PEM bytes (or the 32 raw bytes); one-line errors."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data, name = _read(source, "public key")
    if isinstance(source, bytes) and len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise RouterLabError(f"{name}: not a PEM public key ({str(exc)[:120]}); expected the .pub file "
                             "'router-lab keygen' or 'openssl pkey -pubout' writes") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise RouterLabError(f"{name}: a {type(key).__name__}; expected an Ed25519 public key")
    return key


def _raw_public(key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign_bytes(data: bytes, private_key_path: KeySource) -> dict[str, str]:
    """The Ed25519 signature of ``data``: ``{"algorithm", "key_id", "signature"}`` (base64)."""
    key = load_private_key(private_key_path)
    return {"algorithm": ALGORITHM, "key_id": key_id(_raw_public(key.public_key())),
            "signature": base64.b64encode(key.sign(bytes(data))).decode("ascii")}


def verify_bytes(data: bytes, signature: dict[str, Any], trusted_public_keys: list[KeySource],
                 source: str = "data") -> None:
    """Check ``signature`` (from :func:`sign_bytes`) over ``data`` with one of the trusted keys.

    Raises a one-line RouterLabError naming ``source`` when the signature is malformed, made by a
    key that is not trusted, or does not verify (``data`` changed after signing, or forged).
    """
    from cryptography.exceptions import InvalidSignature

    if not trusted_public_keys:
        raise RouterLabError(f"{source}: no trusted public keys given to verify its signature against")
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        got = signature.get("algorithm") if isinstance(signature, dict) else type(signature).__name__
        raise RouterLabError(f"{source}: signature algorithm is {got!r}; expected {ALGORITHM!r}")
    try:
        raw = base64.b64decode(str(signature.get("signature", "")), validate=True)
    except ValueError as exc:
        raise RouterLabError(f"{source}: signature is not base64; expected the output of sign_bytes") from exc
    keys = {key_id(_raw_public(k)): k for k in (load_public_key(s) for s in trusted_public_keys)}
    key = keys.get(str(signature.get("key_id")))
    if key is None:
        raise RouterLabError(f"{source}: signed by key {signature.get('key_id')!r}, which is not one of "
                             f"the {len(keys)} trusted key(s) ({', '.join(sorted(keys))}); refusing it")
    try:
        key.verify(raw, bytes(data))
    except InvalidSignature as exc:
        raise RouterLabError(f"{source}: the signature by key {signature['key_id']} does not verify: "
                             "the signed content changed after signing (or the signature is forged); "
                             "refusing it") from exc


def generate_keypair(folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a new key pair into ``folder`` (PEM; the private key 0600); never overwrites."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    folder = Path(folder)
    private, public = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
    for path in (private, public):
        if path.exists():
            raise RouterLabError(f"{path}: already exists; keygen never overwrites a key (choose another out=)")
    if folder.exists() and not folder.is_dir():
        raise RouterLabError(f"{folder}: not a folder; expected where to write the key pair")
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private, public
