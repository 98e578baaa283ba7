"""Structured configs of the `policy` group."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class PolicyConfig:
    name: str = MISSING  # registry key


@dataclass
class RandomPolicyConfig(PolicyConfig):
    name: str = "random"
    p_cloud: float = 0.3  # probability of sending a request to the cloud


SCHEMAS: list[tuple[str, str, type]] = [
    ("policy", "schema_policy", PolicyConfig),
    ("policy", "schema_random", RandomPolicyConfig),
]
