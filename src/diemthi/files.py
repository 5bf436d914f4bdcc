"""The one atomic write: a temporary file beside the target, fsynced, renamed into place.

A reader sees the old content or the new, never half of either, and after a crash the
file is one or the other. Pointers, tokens and stored documents all go through here.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` in one rename; the file is created with ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


# Nothing under the data dir is for other local users: scores under embargo, the chatbot's
# store and the Zalo tokens. Directories 0750, files 0640, secret-holding files 0600.
PRIVATE_UMASK = 0o027
SECRET_NAMES = ("zalo-tokens.json", "chatbot.sqlite")


def exposed_secrets(data_dir: Path) -> list[Path]:
    """Secret-holding files under ``data_dir`` that a group or other user can read."""
    out = []
    for name in SECRET_NAMES:
        for path in (data_dir / name, data_dir / f"{name}-wal"):
            try:
                if path.stat().st_mode & 0o077:
                    out.append(path)
            except FileNotFoundError:
                continue
    return out
