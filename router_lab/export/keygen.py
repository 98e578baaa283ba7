"""`router-lab keygen out=DIR`: a new Ed25519 key pair (PEM) for `router-lab export sign_key=…`."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from router_lab.errors import RouterLabError
from router_lab.runtime.signing import generate_keypair, key_id, load_public_key


def keygen(cfg: DictConfig) -> tuple[Path, Path]:
    if not cfg.out:
        raise RouterLabError("keygen: missing out=DIR; expected 'router-lab keygen out=keys/' (the "
                             "folder for router_lab.key and router_lab.pub)")
    private, public = generate_keypair(to_absolute_path(str(cfg.out)))
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = load_public_key(public).public_bytes(Encoding.Raw, PublicFormat.Raw)
    print(f"wrote {private} (private: keep it secret; sign with 'router-lab export sign_key={private}')")
    print(f"wrote {public} (public, key id {key_id(raw)}: give it to DeviceRouter.load(..., trusted_keys=[…]))")
    return private, public
