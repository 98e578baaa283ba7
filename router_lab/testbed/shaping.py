"""How the testbed shapes the network, and whether Linux netem could have done it.

The client shapes: before an upload it waits the request's drawn half RTT plus its bytes at the
uplink rate and the retry timeouts of its lost attempts; after the answer, the half RTT plus the
answer's bytes at the downlink rate; during an outage it does not send.  netem is only detected and
recorded: on loopback it would shape every process's traffic on this shared machine, it needs
root, and it cannot give each request its own draw (which sim-vs-live relies on).
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path


def netem_available() -> bool:
    """Whether the kernel offers the netem qdisc (loaded, built in, or as a module) and `tc` exists."""
    if shutil.which("tc") is None:
        return False
    if Path("/sys/module/sch_netem").exists():
        return True
    modules = Path("/lib/modules") / platform.release()
    for name in ("modules.builtin", "modules.dep"):
        try:
            if "sch_netem" in (modules / name).read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def shaping_info() -> dict[str, object]:
    return {"shaping": "client", "netem_available": netem_available()}
