"""Routing policies: the interface shared with the simulator (`base`), and the registry by name.

Imported lazily, so loading the configs (``router_lab.policies.config``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    **dict.fromkeys(("Policy", "PolicyContext", "Route", "Signals"), "router_lab.policies.base"),
    **dict.fromkeys(("POLICIES", "make_policy", "register_policy"), "router_lab.policies.registry"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'router_lab.policies' has no attribute {name!r}")
