"""Policies by name: ``@register_policy("name")`` on a class, ``make_policy(cfg, context)`` to build."""

from __future__ import annotations

import inspect
from typing import Any

from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext

POLICIES: dict[str, type[Policy]] = {}


def register_policy(name: str):  # noqa: ANN201 - a class decorator
    def decorate(cls: type[Policy]) -> type[Policy]:
        cls.name = name
        POLICIES[name] = cls
        return cls

    return decorate


def _load_builtin() -> None:
    import router_lab.policies.adaptive  # noqa: F401 - registers load_aware, budget
    import router_lab.policies.basic  # noqa: F401 - registers always_local, always_cloud, random
    import router_lab.policies.learned  # noqa: F401 - registers learned, learned_cascade
    import router_lab.policies.scored  # noqa: F401 - registers confidence, oracle


def make_policy(cfg: Any, context: PolicyContext) -> Policy:
    """Build the policy named by ``cfg.name`` from its config (keys other than ``name``)."""
    _load_builtin()
    cls = POLICIES.get(cfg.name)
    if cls is None:
        raise RouterLabError(f"policy.name: got {cfg.name!r}; expected one of {', '.join(sorted(POLICIES))}")
    params = {k: v for k, v in dict(cfg).items() if k != "name"}
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "context")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise RouterLabError(f"policy {cfg.name}: got parameter {unknown[0]!r}; expected one of "
                             f"{', '.join(accepted) or '(none)'}")
    return cls(context, **params)
