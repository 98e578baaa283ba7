"""The `router-lab` command: parse the subcommand, hand the rest to Hydra, render errors in one line.

    router-lab dataset build digits                 # positional NAME is `dataset=NAME`
    router-lab dataset check path/to/data.parquet   # positional PATH is `path=PATH`
    router-lab simulate policy=learned device=laptop_cpu
    router-lab simulate -m policy=always_local,learned   # Hydra multirun
    eval "$(router-lab -sc install=bash)"           # shell completion (also --hydra-help, --info)

Everything after the subcommand is a Hydra override or flag (``-m``, ``--cfg job``, ``--help``).
User mistakes (``RouterLabError``, bad overrides, unknown config options, paths the file system
refuses) print one line ``router-lab: error: …`` and exit with status 2; no traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from router_lab.cli_hydra import (
    check_options,
    flags_first,
    no_such_option,
    normalize_flags,
    quiet_help,
)
from router_lab.config import CONF_DIR
from router_lab.errors import RouterLabError, one_line, os_error_message

__all__ = ["CONF_DIR", "COMMANDS", "flags_first", "main"]

# Hydra's own flags that need no command: `router-lab -sc install=bash`, `--hydra-help`, `--info`.
TOP_LEVEL_FLAGS = ("-sc", "--shell-completion", "--hydra-help", "--info", "-i", "--version")


@dataclass(frozen=True)
class Command:
    handler: str  # "module:function", called with the composed DictConfig
    summary: str
    positional: str | None = None  # the override a bare positional argument becomes
    multirun: bool = False  # always a Hydra multirun (`-m` implied)
    finish: str | None = None  # "module:function" called with the sweep folder after the sweep


COMMANDS: dict[str, Command] = {
    "dataset build": Command("router_lab.data.commands:build",
                             "build a built-in dataset (digits, synthetic) under datasets/", "dataset"),
    "dataset check": Command("router_lab.data.commands:check",
                             "validate a CSV/Parquet file against the contract and print its card", "path"),
    "dataset import": Command("router_lab.data.importers:import_command",
                              "import a routing benchmark (routellm, routerbench) into the contract", "importer"),
    "train": Command("router_lab.train.commands:train",
                     "fit a router and pick its threshold for a target"),
    "evaluate": Command("router_lab.evaluate:evaluate_command",
                        "offline routing curves and metrics (APGR, PGR, CPT, AUROC) for every policy"),
    "simulate": Command("router_lab.sim.commands:simulate",
                        "run routing policies under load through device, network and cloud"),
    "export": Command("router_lab.export.commands:export",
                      "convert a trained router to ONNX, validate it, write the device artifact"),
    "validate": Command("router_lab.export.commands:validate",
                        "validate an exported ONNX router against data (parity, latency, size)", "path"),
    "replay": Command("router_lab.sim.replay:replay_command",
                      "replay a simulate run's requests through an exported bundle (0 mismatches)", "path"),
    "testbed": Command("router_lab.testbed.commands:testbed",
                       "run the scenario live: HTTP cloud service, device workers, shaped network, real load"),
    "profile": Command("router_lab.testbed.profile:profile",
                       "measure the device and cloud models' service times here; write simulator profiles"),
    "search": Command("router_lab.search.commands:search_trial",
                      "search policy parameters for an objective under constraints (Optuna; -m implied)",
                      multirun=True, finish="router_lab.search.commands:finish_search"),
    "report": Command("router_lab.report.commands:report",
                      "aggregate a run or a multirun folder into tables, figures and report.html", "path"),
    "keygen": Command("router_lab.export.keygen:keygen",
                      "write an Ed25519 key pair (PEM) for signing exports: keygen out=DIR"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: router-lab COMMAND [ARG] [key=value ...] [-m] [--cfg job] [--help]", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "Arguments after the command are Hydra overrides (group=option, key=value); ",
              "'-m' runs a multirun sweep; 'router-lab COMMAND --help' lists the config groups.",
              "Hydra: --hydra-help, --info [searchpath|defaults|…], -sc install=bash (completion).", "",
              policies_help(), "",
              "'router-lab COMMAND --help' also lists the routers, targets, datasets, workloads, feature",
              "modes, labels, importers and export targets, each with its summary."]
    return "\n".join(lines)


def policies_help() -> str:
    """The policies with their summaries (their registry; the other extension points are listed by
    ``COMMAND --help``, whose imports are heavier)."""
    from router_lab.extensions import EXTENSION_POINTS

    point = next(p for p in EXTENSION_POINTS if p.group == "policy")
    return "\n".join([f"{point.title}:", *(f"  {line}" for line in point.help_lines())])


def split_command(argv: list[str]) -> tuple[str, Command, list[str]]:
    """Find the subcommand at the start of ``argv``; return it and the Hydra arguments."""
    for words in (2, 1):
        name = " ".join(argv[:words])
        if name in COMMANDS:
            return name, COMMANDS[name], argv[words:]
    known = sorted({name.split()[0] for name in COMMANDS})
    got = " ".join(argv[:2]) if argv else ""
    raise RouterLabError(f"unknown command '{got}'; expected one of: {', '.join(sorted(COMMANDS))}"
                         if argv and argv[0] in known else
                         f"unknown command '{got}'; expected one of: {', '.join(known)}")


def refuse_unsafe_flags(args: list[str]) -> None:
    """Hydra's ``--experimental-rerun FILE.pickle`` unpickles a file: refused (runs its code)."""
    if any(a == "--experimental-rerun" or a.startswith("--experimental-rerun=") for a in args):
        raise RouterLabError("--experimental-rerun: not supported; it unpickles a file, which runs "
                             "any code in it; re-run the command with the overrides listed in the "
                             "run folder's .hydra/overrides.yaml instead")


def hydra_arguments(name: str, command: Command, rest: list[str]) -> list[str]:
    """Turn a leading bare positional argument into its override; prefix the command's name."""
    args = list(rest)
    if command.positional and args and "=" not in args[0] and not args[0].startswith("-"):
        args[0] = f"{command.positional}={args[0]}"
    check_options(args)
    leading = [f"command={name.replace(' ', '_')}", f"hydra.job.name={name.replace(' ', '_')}"]
    if command.multirun and not {"-m", "--multirun"} & set(args):
        leading.append("-m")
    return normalize_flags(leading + args)


def _resolve_handler(spec: str) -> Callable[..., object]:
    module_name, func_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise RouterLabError(f"command handler {spec} is not available in this install") from exc
        raise
    return getattr(module, func_name)


def run_hydra(command: Command | None, args: list[str]) -> None:
    """Compose the config and run ``command`` under Hydra (None: a Hydra flag such as ``-sc``)."""
    import hydra

    from router_lab.config import register_configs
    from router_lab.config_checks import check_config
    from router_lab.report import progress
    from router_lab.report.jobs import (
        in_multirun,
        job_label,
        mark_config_failure,
        run_job,
        sweep_failure,
    )
    from router_lab.report.launcher import watch_parent
    from router_lab.report.resume import with_resumed_sweep_dir

    register_configs()
    handler = _resolve_handler(command.handler) if command else _no_job
    if command and "--hydra-help" not in args:
        args = with_resumed_sweep_dir(_command_option(args), args)

    def task(cfg):  # noqa: ANN001 - Hydra passes a DictConfig
        watch_parent()  # in a sweep worker: exit when the sweep's parent dies
        try:
            try:
                check_config(cfg)  # what the typed schemas let through: '+' keys, ignored keys, NaN
            except RouterLabError as exc:
                mark_config_failure(cfg, exc)  # the job folder says why, as a failed job's does
                raise
            try:
                return run_job(handler, cfg)
            except OSError as exc:
                message = os_error_message(exc)
                if message is None:
                    raise
                raise RouterLabError(message) from None
        except RouterLabError as exc:
            if in_multirun():
                raise RouterLabError(f"{job_label()} failed: {exc}") from None
            # Exit here, before Hydra wraps the error with its own "Error executing job" line.
            print(f"router-lab: error: {exc}", file=sys.stderr)
            raise SystemExit(RouterLabError.exit_code) from None

    task.__module__ = "router_lab.cli"
    task.__name__ = "router_lab"
    saved = sys.argv
    sys.argv = ["router-lab", *flags_first(args)]
    progress.current_sweep_dir = None
    try:
        with quiet_help(args):
            hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(task)()
        if command is not None and command.finish:
            _resolve_handler(command.finish)(progress.current_sweep_dir)
    except RouterLabError as exc:
        progress.stop_watching()
        raise sweep_failure(exc, progress.current_sweep_dir) from None
    finally:
        progress.stop_watching()
        sys.argv = saved


def _no_job(cfg) -> None:  # noqa: ANN001 - never called: Hydra flags end before any job
    raise RouterLabError("no command given")


def _command_option(args: list[str]) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith("command="))


def render_error(exc: BaseException) -> str | None:
    """The one-line message for a user mistake, or None when ``exc`` is a bug."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, RouterLabError):
        return str(exc)
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        return no_such_option(group, option, list(exc.options))
    if isinstance(exc, OSError):
        return os_error_message(exc)
    if isinstance(exc, OverrideParseException) and not exc.override.isascii():
        return (f"{one_line(str(exc))}; the override {exc.override!r} has non-ASCII characters: "
                "quote its value, e.g. 'key=\"välue\"' (single quotes around it for the shell)")
    if isinstance(exc, ValueError) and str(exc).startswith("Only one of --run, --multirun"):
        return one_line(str(exc))  # Hydra's parser: e.g. -m with -sc
    if isinstance(exc, OverrideParseException) and exc.override not in str(exc):
        return f"{exc.override}: {one_line(str(exc))}"
    if isinstance(exc, HydraException | OmegaConfBaseException):
        message = one_line(str(exc))
        cause = exc.__cause__
        if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
            message += "; " + one_line(str(cause))
        return message
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a sweep (report/launcher.py)
        signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 2
        print(f"router-lab: interrupted (signal {signum})", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        # The reader went away (`router-lab --help | head`): stop quietly, as a shell tool does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the broken pipe


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    # Let Hydra raise instead of printing its own traceback; we render user errors ourselves.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        if argv[0] in TOP_LEVEL_FLAGS:
            from router_lab.completion import top_level_arguments

            hydra_call = top_level_arguments(argv)
            if hydra_call is not None:
                run_hydra(*hydra_call)
            return 0
        name, command, rest = split_command(argv)
        refuse_unsafe_flags(rest)
        run_hydra(command, hydra_arguments(name, command, rest))
    except Exception as exc:
        message = render_error(exc)
        if message is None:
            raise
        print(f"router-lab: error: {message}", file=sys.stderr)
        return RouterLabError.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
