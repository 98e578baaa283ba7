"""Seeds for the generators a policy ships with, derived from the run's seeded generator."""

from __future__ import annotations

import numpy as np

from router_lab.constants import SEED_BOUND


def child_seed(rng: np.random.Generator) -> int:
    """A seed derived from ``rng``, spawned so that its own stream of draws is left as it was."""
    try:
        return int(rng.spawn(1)[0].integers(SEED_BOUND))
    except (TypeError, ValueError):  # a generator made without a SeedSequence cannot spawn
        return int(rng.integers(SEED_BOUND))
