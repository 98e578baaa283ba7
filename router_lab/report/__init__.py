"""router_lab.report."""
