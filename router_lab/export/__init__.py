"""Shipping a router: skl2onnx conversion, the combined device graph, metadata and validation gates.

``router-lab export`` converts a trained router (``convert``), builds the digits device graph
(``device_graph``), validates the bytes (``validate``) and writes them only when every gate passes.
"""
