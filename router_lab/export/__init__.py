"""router_lab.export."""
