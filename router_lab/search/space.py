"""The conditional part of the search space, as the Optuna sweeper's ``custom_search_space``.

``hydra.sweeper.params`` holds the parameters every trial has (the policy); ``search.space`` adds
the ones that only mean something for some choices (a threshold for ``learned``, a budget target
for ``budget``, the inner policy, SLO and backoff of ``load_aware``…), each rule applied when its
``when`` conditions hold for what the trial has drawn so far.  A trial of a policy that scores with
a trained router gets ``model_path`` pointing at the router the search trained once for its mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from router_lab.errors import RouterLabError

ROUTERS_DIR = "routers"  # under the sweep folder: one `router-lab train` folder per feature mode
# The feature modes a router-scored policy can use, in order of preference (budget and learned:
# the request's own features or its text; the cascade: with the device's confidence).
ROUTER_MODES = {"learned": ("input", "text"), "budget": ("input", "text"),
                "learned_cascade": ("input+confidence",)}
MODES = ("input", "input+confidence", "text")


def router_mode(policy: str, trained: list[str]) -> str | None:
    """The trained router's mode a policy of kind ``policy`` scores with, or None."""
    return next((m for m in ROUTER_MODES.get(policy, ()) if m in trained), None)


def mode_folder(mode: str) -> str:
    return mode.replace("+", "_")


def router_dir(sweep_dir: str | Path, mode: str) -> Path:
    return Path(sweep_dir) / ROUTERS_DIR / mode_folder(mode)


def _conditions(when: str) -> list[tuple[str, str]]:
    pairs = []
    for part in str(when).split():
        key, sep, value = part.partition("=")
        if not sep:
            raise RouterLabError(f"search.space: when {when!r}: {part!r} is not key=value")
        pairs.append((key.lstrip("+"), value))
    return pairs


def _drawn(trial: Any) -> dict[str, str]:
    return {name.lstrip("+"): str(value) for name, value in trial.params.items()}


def parse_params(params: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sweeper-syntax parameters → (Optuna distributions, fixed values), as the sweeper parses them."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    try:
        return create_params_from_overrides([str(p) for p in params])
    except Exception as exc:  # noqa: BLE001 - the override grammar's error, on one line
        raise RouterLabError(f"search.space: {list(params)}: {exc}") from None


def extend(config: Any, trial: Any) -> None:
    """``hydra.sweeper.custom_search_space``: draw the conditional parameters of ``trial``."""
    from optuna.distributions import CategoricalDistribution

    for rule in config.search.space:
        drawn = _drawn(trial)
        if all(drawn.get(k) == v for k, v in _conditions(rule.when)):
            distributions, fixed = parse_params(list(rule.params))
            for name, distribution in distributions.items():
                trial._suggest(name, distribution)
            for name, value in fixed.items():
                trial._suggest(name, CategoricalDistribution([value]))
    drawn = _drawn(trial)
    policy = drawn.get("policy", str(config.policy.name))
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    trained = list(config.search.routers)
    paths = [f"'{router_dir(sweep_dir, m)}'" for m in trained]
    if (mode := router_mode(policy, trained)) is not None:
        _set(trial, "policy.model_path", paths[trained.index(mode)], paths)
    inner = drawn.get("policy.inner.name", "")
    if policy == "load_aware" and (mode := router_mode(inner, trained)) is not None:
        _set(trial, "+policy.inner.model_path", paths[trained.index(mode)], paths)


def _set(trial: Any, name: str, value: str, choices: list[str]) -> None:
    """Give ``trial`` the parameter ``name`` = ``value``, not drawn: it follows from the policy.

    One distribution over every choice for all trials (Optuna refuses a parameter whose choices
    change between trials), the value written as the sampler would write a drawn one."""
    from optuna.distributions import CategoricalDistribution

    distribution = CategoricalDistribution(choices)
    trial.storage.set_trial_param(trial._trial_id, name, distribution.to_internal_repr(value), distribution)
