"""router_lab's Hydra launcher plugin: Hydra instantiates launchers only from classes defined in
the hydra_plugins namespace.  The behaviour lives in router_lab/report/launcher.py; the option is
``hydra/launcher=router_lab_joblib`` (the default in router_lab/conf/config.yaml)."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf

from router_lab.report.launcher import StoppingJoblibLauncher


class CleanJoblibLauncher(StoppingJoblibLauncher):
    """joblib's launcher (same options) that stops its workers on every exit of the sweep."""


@dataclass
class CleanJoblibLauncherConf(JobLibLauncherConf):
    _target_: str = "hydra_plugins.router_lab_launcher.CleanJoblibLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="router_lab_joblib",
                             node=CleanJoblibLauncherConf, provider="router_lab")
