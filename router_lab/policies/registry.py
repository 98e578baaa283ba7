"""Policies by name: ``@register_policy("name", schema=Config)`` on a class, ``make_policy(cfg, context)``
to build one.

:data:`POLICIES` is a :class:`router_lab.registry.Registry` that imports every module of
``router_lab.policies`` before its first lookup, so a new module in the package registers itself.
An entry's ``schema`` is its config dataclass: the Hydra ConfigStore schema of ``conf/policy/<name>.yaml``
(``router_lab.config``) and the single place its defaults live — :func:`make_policy` fills every
parameter the config leaves out from it, so a policy's ``__init__`` repeats none.
"""

from __future__ import annotations

import inspect
from typing import Any

from router_lab.errors import RouterLabError
from router_lab.policies.base import Policy, PolicyContext
from router_lab.policies.config import PolicyConfig
from router_lab.registry import Registry, schema_defaults

POLICIES: Registry[type[Policy]] = Registry("policy", field="policy.name", modules=("router_lab.policies",))


def register_policy(name: str, *, schema: type = PolicyConfig, summary: str = "",  # noqa: ANN201 - a class decorator
                    uses_router: bool = False, exported_router: str = "router_onnx", n_models: bool = False):
    """Register a policy class as ``name`` with its config dataclass ``schema`` (default: no
    parameters).  ``uses_router``: it scores with a trained router (``model_path=`` applies to it,
    `export` trains or loads one for it); ``exported_router``: the top-level key naming the
    exported router it scores with when one is given (``router_onnx``, or ``cascade_onnx`` for a
    router trained with the device's confidence) — it applies to a schema with ``backend`` and
    ``onnx_path`` fields; ``n_models``: it chooses among more than two models (compared in
    ``+experiment=tiers``' arms, not in the two-model comparisons); ``summary``: the ``--help`` line (default: the class docstring's first line)."""
    if exported_router not in EXPORTED_ROUTER_KEYS:
        raise ValueError(f"policy {name}: exported_router={exported_router!r}; expected one of "
                         f"{', '.join(EXPORTED_ROUTER_KEYS)}")

    def decorate(cls: type[Policy]) -> type[Policy]:
        cls.name = name
        POLICIES.register(name, cls, schema=schema, summary=summary, uses_router=uses_router,
                          exported_router=exported_router, n_models=n_models)
        return cls

    return decorate


# The top-level keys naming exported routers (router_lab.config.Config): the router trained on
# the inputs, and the one trained on the inputs and the device's confidence (for cascades).
EXPORTED_ROUTER_KEYS = ("router_onnx", "cascade_onnx")


def two_model_policies() -> list[str]:
    """The policies the two-model comparisons sweep: every registered one but the N-model ones."""
    return [e.name for e in POLICIES.entries() if not e.meta.get("n_models")]


def router_policies() -> list[str]:
    """The policies that score with a trained router."""
    return [e.name for e in POLICIES.entries() if e.meta.get("uses_router")]


def make_policy(cfg: Any, context: PolicyContext) -> Policy:
    """Build the policy named by ``cfg.name`` from its config: the keys other than ``name``, each
    missing one taken from the policy's schema."""
    entry = POLICIES.entry(cfg.name)
    cls = entry.obj
    params = {k: v for k, v in dict(cfg).items() if k != "name"}
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "context")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise RouterLabError(f"policy {cfg.name}: got parameter {unknown[0]!r}; expected one of "
                             f"{', '.join(accepted) or '(none)'}")
    values = {**schema_defaults(entry.schema or PolicyConfig), **params}
    missing = [p for p in accepted if p not in values]
    if missing:
        raise RouterLabError(f"policy {cfg.name}: missing parameter {missing[0]!r}; its schema gives it "
                             "no default, so the config must set it")
    return cls(context, **{p: values[p] for p in accepted})
