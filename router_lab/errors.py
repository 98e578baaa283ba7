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


def os_error_message(exc: OSError) -> str | None:
    """One line for a file-system refusal on a path the user chose (None: no path, likely a bug).

    A file where a folder is expected, a read-only or missing location, a full disk: each names the
    path and says what was expected.
    """
    import errno

    path = exc.filename
    if path is None:
        return None
    hints = {
        errno.EEXIST: "a file is in the way; expected a folder (or nothing) there",
        errno.ENOTDIR: "a part of this path is a file; expected folders",
        errno.EISDIR: "it is a folder; expected a file",
        errno.EACCES: "permission denied; expected a folder you can write to",
        errno.EPERM: "operation not permitted; expected a folder you can write to",
        errno.EROFS: "read-only file system; expected a writable location",
        errno.ENOSPC: "no space left on the device",
        errno.ENOENT: "no such file or folder",
        errno.ENAMETOOLONG: "the name is too long",
    }
    hint = hints.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    target = f"{path} -> {exc.filename2}" if exc.filename2 else str(path)
    return one_line(f"{target}: {hint}")
