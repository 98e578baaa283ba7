"""Routing policies: the interface shared with the simulator (:mod:`router_lab.policies.base`), the
registry by name (:mod:`router_lab.policies.registry`), one module per family of policies, and the
config dataclasses (:mod:`router_lab.policies.config`).

Nothing is imported here, so loading the configs stays cheap; import from the submodules
(``from router_lab.policies.registry import make_policy``).
"""
