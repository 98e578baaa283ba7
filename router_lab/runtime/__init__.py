"""The device side: routing bundles and the policy core, with numpy + onnxruntime only.

    from router_lab.runtime import Request, Signals, Outcome, load_bundle
    bundle = load_bundle("outputs/export/<time>/")   # every file verified against bundle.manifest.json
    policy = bundle.make_policy()
    decision = policy.decide(Request(features=x), Signals(now_s=t, local_queued=q, network_up=up))
    policy.observe(Outcome(now_s=t2, latency_ms=ms, answered_by="cloud", cost_usd=c))

    from router_lab.runtime import DeviceRouter      # a single exported router graph
    DeviceRouter.load("router.onnx").route(x)        # RouteResult(decision=True -> cloud, score)
"""

from router_lab.runtime.bundle import Bundle, load_bundle
from router_lab.runtime.device_router import DeviceRouter, RouteResult
from router_lab.runtime.policy import (
           REASONS,
           Decision,
           Outcome,
           Request,
           Route,
           RoutingPolicy,
           Signals,
)

__all__ = ["REASONS", "Bundle", "Decision", "DeviceRouter", "Outcome", "Request", "Route", "RouteResult",
           "RoutingPolicy", "Signals", "load_bundle"]
