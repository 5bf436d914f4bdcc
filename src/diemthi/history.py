"""What was imported, activated or refused, by whom, from which files and why.

``DIR/history.jsonl`` holds one JSON object per line, one line per event, appended and
never rewritten: when a parent disputes "it said 7.5 last week", the lines say which
snapshot was served from when, built from which files (name and sha256), by whom.

Each line has at least ``time`` (UTC, ISO), ``action`` (``import``, ``activate``,
``refused``, ``release_at``, ...) and ``by`` (``--by NAME`` or the OS user); callers add
``year``, ``snapshot``, ``files``, ``rows``, ``reason`` and whatever else the event has.
"""

from __future__ import annotations

import getpass
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import orjson

FILENAME = "history.jsonl"


def path(data_dir: Path) -> Path:
    return data_dir / FILENAME


def operator(by: str | None = None) -> str:
    """The name given with ``--by``, else the OS user running the command."""
    if by and by.strip():
        return by.strip()
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (containers): the uid says enough
        return f"uid {os.getuid()}"


def append(data_dir: Path, action: str, *, by: str | None = None, **fields: Any) -> dict:
    """Append one event; return it as written.

    One ``write`` of one line on a file opened with ``O_APPEND``: concurrent commands
    never interleave inside a line, and nothing before it is ever touched.
    """
    event = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
             "action": action, "by": operator(by)}
    event.update({k: v for k, v in fields.items() if v is not None})
    line = orjson.dumps(event, default=str) + b"\n"
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path(data_dir), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # a line torn by a crash stays alone on its line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return event


def read(data_dir: Path, year: int | None = None) -> Iterator[dict]:
    """Every event, oldest first; only ``year``'s when given. A torn last line is skipped."""
    try:
        fh = open(path(data_dir), "rb")
    except FileNotFoundError:
        return
    with fh:
        for raw in fh:
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # a line cut by a crash mid-write; the next ones are whole
            if year is None or event.get("year") == year:
                yield event


def describe(event: dict) -> str:
    """One event as one terminal line, for ``diemthi history``."""
    parts = [event.get("time", "?"), event.get("action", "?")]
    if "year" in event:
        parts.append(f"năm {event['year']}")
    if event.get("snapshot"):
        parts.append(str(event["snapshot"]))
    if event.get("base"):
        parts.append(f"(từ {event['base']})")
    if "rows" in event:
        parts.append(f"{event['rows']} thí sinh")
    if event.get("changed") is not None:
        parts.append(f"{event['changed']} thí sinh đổi điểm")
    parts.append(f"bởi {event.get('by', '?')}")
    for f in event.get("files") or []:
        parts.append(f"{f.get('name')} sha256:{str(f.get('sha256', ''))[:12]}")
    if event.get("release_at"):
        parts.append(f"công bố {event['release_at']}")
    if event.get("reason"):
        parts.append(f"lý do: {event['reason']}")
    if event.get("error"):
        parts.append(f"lỗi: {event['error']}")
    if event.get("report"):
        parts.append(f"báo cáo: {event['report']}")
    return "  ".join(parts)
