"""Routing datasets: the contract (`contract`), files and cards (`files`), built-in builders
(`builders`, `digits`, `synthetic`) and importers (`importers`).

Nothing is imported here, so loading the configs (``router_lab.data.config``) stays cheap.
"""
