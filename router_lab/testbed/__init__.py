"""The live testbed: the simulator's scenario run on real processes on loopback.

A real HTTP cloud service (aiohttp, a child process), a device worker pool running the device model
in onnxruntime with the routing policy, a client that shapes the network, and an open-loop load
generator; the result is the simulator's :class:`~router_lab.sim.records.Records`.
``router-lab testbed`` (``commands.testbed``), ``router-lab profile`` (``profile.profile``).
"""
