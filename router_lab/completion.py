"""Hydra's flags that come before any command: shell completion, ``--hydra-help``, ``--info``.

``eval "$(router-lab -sc install=bash)"`` installs Hydra's completion script; the shell then calls
``router-lab -sc query=bash`` with the line typed so far in ``COMP_LINE``.  The command words
(``simulate``, ``dataset build``) are completed here; once a command is typed, Hydra completes its
overrides on the line without those words (as if the command were its own Hydra app).
"""

from __future__ import annotations

import os
import re

from router_lab.cli import COMMANDS, Command, hydra_arguments
from router_lab.cli_hydra import normalize_flags

_APP = re.compile(r"^\s*\S+\s*")  # the program name at the start of COMP_LINE


def top_level_arguments(argv: list[str]) -> tuple[Command | None, list[str]] | None:
    """What to hand to Hydra for ``router-lab <flag> …``, or None when answered here."""
    if argv[0] in ("-sc", "--shell-completion") and len(argv) > 1 and argv[1].startswith("query="):
        return _query(argv)
    return None, normalize_flags(argv)


def _query(argv: list[str]) -> tuple[Command | None, list[str]] | None:
    line = os.environ.get("COMP_LINE", "")
    rest = _APP.sub("", line, count=1)
    words = rest.split()
    new_word = rest == "" or rest.endswith(" ")
    for n in (2, 1):
        name = " ".join(words[:n])
        if name in COMMANDS and (len(words) > n or new_word):
            program = line[: len(line) - len(rest)]
            remaining = re.sub(rf"^\s*{re.escape(words[0])}" + (rf"\s+{re.escape(words[1])}" if n == 2 else ""),
                               "", rest, count=1)
            os.environ["COMP_LINE"] = program + remaining.lstrip()
            if not os.environ["COMP_LINE"].endswith(" ") and new_word:
                os.environ["COMP_LINE"] += " "
            return COMMANDS[name], hydra_arguments(name, COMMANDS[name], argv)
    print(" ".join(command_words(words, new_word)))
    return None


def command_words(words: list[str], new_word: bool) -> list[str]:
    """The command words that may come next after ``words`` (the shell filters by prefix)."""
    firsts = sorted({name.split()[0] for name in COMMANDS})
    typed = words if new_word else words[:-1]
    if not typed:
        return firsts
    seconds = sorted(name.split()[1] for name in COMMANDS if name.startswith(typed[0] + " "))
    return seconds if len(typed) == 1 else []
