"""router_lab.train."""
