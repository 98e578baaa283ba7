"""How the CLI hands arguments to Hydra: its flags made unambiguous, internal schema options hidden
from help and completion and refused as choices.

Each config group's options are the files in ``router_lab/conf/<group>/``; an option named
``schema_*`` only carries the group's typed schema (an option file names it in its defaults list).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator

from router_lab.config import CONF_DIR, conf_hint
from router_lab.errors import RouterLabError

INTERNAL_OPTION_PREFIX = "schema_"
_INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


_GROUP_CHOICE = re.compile(r"^[+~]{0,2}(?P<group>[\w/]+)(?:@[\w.]*)?=(?P<value>.*)$")


def group_options(group: str) -> list[str]:
    """The options a user may choose in ``group`` (the option files under the config folder)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def no_such_option(group: str, option: str, options: list[str]) -> str:
    choices = ", ".join(o for o in sorted(options) if not o.startswith(INTERNAL_OPTION_PREFIX))
    return f"{group}={option}: no such option; expected one of: {choices} ({conf_hint(group)})"


def check_options(args: list[str]) -> None:
    """Refuse internal schema options (``policy=schema_learned``), also inside sweeps."""
    for arg in args:
        match = _GROUP_CHOICE.match(arg)
        if not match or not (CONF_DIR / match["group"]).is_dir():
            continue
        for value in re.split(r"[\s,()\[\]]+", match["value"]):
            value = value.strip("'\"")
            if value.startswith(INTERNAL_OPTION_PREFIX):
                group = match["group"]
                raise RouterLabError(no_such_option(group, value, group_options(group)))


def normalize_flags(args: list[str]) -> list[str]:
    """Hydra's flags made unambiguous for its parser.

    * a bare ``--info`` becomes ``--info all`` (else argparse takes the next override as its value);
    * ``-m`` with ``--cfg``/``--info`` shows the multirun's config (``hydra.mode=MULTIRUN``), as
      ``--cfg hydra`` cannot be combined with ``-m`` in Hydra's parser;
    * ``--hydra-help`` keeps only ``hydra.*`` overrides (Hydra composes its help without the app).
    """
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg in ("--info", "-i"):
            nxt = args[i + 1] if i + 1 < len(args) else ""
            if nxt not in _INFO_CHOICES:
                out.append("all")
    multirun = [a for a in out if a in ("-m", "--multirun")]
    if multirun and any(a in ("--cfg", "-c", "--info", "-i") for a in out):
        flags = flags_first(out)
        n_flags = next((i for i, a in enumerate(flags) if "=" in a and not a.startswith("-")), len(flags))
        out = ([a for a in flags[:n_flags] if a not in multirun] + first_job(flags[n_flags:])
               + ["hydra.mode=MULTIRUN"])
    if "--hydra-help" in out:
        out = [a for a in out if a.startswith("-") or a.lstrip("+~").startswith(("hydra.", "hydra/"))]
    return out


def first_job(overrides: list[str]) -> list[str]:
    """The overrides of a sweep's first job (``policy=a,b`` -> ``policy=a``), for ``-m --cfg``."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    batches = BasicSweeper.split_arguments(parsed, None)
    return list(batches[0][0]) if batches and batches[0] else list(overrides)


@contextlib.contextmanager
def quiet_help(args: list[str]) -> Iterator[None]:
    """Hide internal schema options from ``--help`` (and from completion's suggestions); after
    ``--help``, list every registered option with its summary (:mod:`router_lab.extensions`)."""
    if not any(a in ("--help", "-h", "-sc", "--shell-completion") for a in args):
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        text = hide_internal_options(buffer.getvalue())
        if text and any(a in ("--help", "-h") for a in args):
            from router_lab.extensions import options_help

            text = f"{text.rstrip()}\n\n{options_help()}\n"
        sys.stdout.write(text)
        sys.stdout.flush()


def hide_internal_options(text: str) -> str:
    """Drop ``schema_*`` options from Hydra's help (``group: a, schema_b, c``) and from completion
    suggestions (``policy=a policy=schema_b``)."""
    text = re.sub(rf"(?m)(?<=[:,] ){INTERNAL_OPTION_PREFIX}\w+(, )?", "", text)
    text = re.sub(r"(?m), $", "", text)
    return re.sub(rf"(?<!\S)\S*={INTERNAL_OPTION_PREFIX}\w*[ \t]?", "", text)


_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                "--config-dir", "-cd", "--experimental-rerun", "--info", "-i"}


def flags_first(args: list[str]) -> list[str]:
    """Hydra's flags (``-m``, ``--cfg job``) before the overrides, so they may appear anywhere.

    Hydra's argparse takes the overrides as one run of positionals; ``simulate -m policy=a,b``
    arrives here as ``command=simulate … -m policy=a,b``, which argparse would reject.
    """
    flags: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            flags.append(arg)
            nxt = args[i + 1] if i + 1 < len(args) else ""
            if arg in _VALUE_FLAGS and nxt and not nxt.startswith("-") and "=" not in nxt:
                flags.append(nxt)
                i += 1
        else:
            overrides.append(arg)
        i += 1
    return flags + overrides
