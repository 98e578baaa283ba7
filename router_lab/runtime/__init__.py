"""router_lab.runtime."""
