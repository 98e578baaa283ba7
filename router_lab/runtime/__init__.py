"""The device side: load an exported ONNX router and route requests with numpy + onnxruntime only.

    from router_lab.runtime import DeviceRouter
    router = DeviceRouter.load("router.onnx")      # verified against router.manifest.json
    result = router.route(x)                       # RouteResult(decision=True -> cloud, score)
"""

from router_lab.runtime.device_router import DeviceRouter, RouteResult

__all__ = ["DeviceRouter", "RouteResult"]
