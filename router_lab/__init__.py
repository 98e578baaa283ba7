"""router_lab: design, simulate and ship device/cloud routing for hybrid on-device inference."""

__version__ = "0.1.0"
