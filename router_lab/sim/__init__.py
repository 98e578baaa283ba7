"""Discrete-event simulation of routed requests through device, network and cloud (simpy + fast path).

Library entry points, each imported from its module (nothing is imported here, so loading the
configs, ``router_lab.sim.config``, stays cheap): ``router_lab.sim.commands.simulate_config(cfg)``
(records + metrics, no files), ``router_lab.sim.engines.run(scenario, policy, dataset, seed)`` (one
replication), ``router_lab.sim.metrics.summarize(records, scenario)``,
``router_lab.sim.scenario.make_scenario`` / ``scenario_from_config``, and the records
(``router_lab.sim.records.Records``, ``Outcome``).
"""
