"""router_lab.sim."""
