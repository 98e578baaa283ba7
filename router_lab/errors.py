"""The user-error type: a mistake in a file, a config value or a command, rendered as one line."""

from __future__ import annotations


class RouterLabError(Exception):
    """A user mistake (bad file, bad config value, bad command).

    The CLI prints ``router-lab: error: <message>`` on one line and exits with status 2; no
    traceback.  Messages name the file, field or value and say what was expected.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def one_line(text: str) -> str:
    """Fold a possibly multi-line message into one line (blank lines dropped)."""
    parts = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(parts)
