"""Routing policies: the interface shared with the simulator, and the registry by name."""

from router_lab.policies.base import Policy, PolicyContext, RequestView, Route, SystemState
from router_lab.policies.registry import POLICIES, make_policy, register_policy

__all__ = ["POLICIES", "Policy", "PolicyContext", "RequestView", "Route", "SystemState",
           "make_policy", "register_policy"]
