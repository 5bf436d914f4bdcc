"""Backing up a data dir while it serves, and restoring it elsewhere.

What a data dir holds, and how each part is copied:

- ``snapshots/*.sqlite`` are immutable: hard-linked when the backup is on the same file
  system (costs nothing), else copied; either way verified by sha256.
- Live SQLite files (the chatbot's outbox, in WAL mode) are copied through SQLite's online
  backup API, which gives a consistent copy while the server keeps writing.
- Append-only logs (``history.jsonl``) are copied up to their last complete line.
- Secret-holding files (the Zalo tokens) only with ``with_secrets``.
- Everything else (pointers, reports, distributions) is copied as it is.

``backup.json`` in the destination lists every file with its sha256; :func:`restore`
checks them all before it writes anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson

from .files import PRIVATE_UMASK, SECRET_NAMES, atomic_write

MANIFEST = "backup.json"
SKIP_SUFFIXES = (".partial", ".tmp", ".lock", "-wal", "-shm", "-journal")
LOGS = ("history.jsonl",)


class BackupError(Exception):
    """The backup or restore cannot go on; the message is for staff (Vietnamese)."""


@dataclass
class Report:
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    linked: int = 0
    copied: int = 0
    online: int = 0  # SQLite files copied through the backup API
    skipped_secrets: list[str] = field(default_factory=list)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_live_sqlite(path: Path) -> bool:
    if path.suffix != ".sqlite" or path.parent.name == "snapshots":
        return False
    with open(path, "rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"


def _online_copy(src: Path, dst: Path) -> None:
    """A consistent copy of a database another process may be writing (WAL mode)."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(dst)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
    finally:
        source.close()


def _copy_log(src: Path, dst: Path) -> None:
    """An append-only log up to its last complete line (a writer may be mid-line)."""
    data = src.read_bytes()
    dst.write_bytes(data[:data.rfind(b"\n") + 1])


def _link_or_copy(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copy2(src, dst)
        return False


def backup(data_dir: Path, dest: Path, with_secrets: bool = False) -> Report:
    """Copy ``data_dir`` into ``dest`` (new or empty), consistent while the server runs."""
    if not data_dir.is_dir():
        raise BackupError(f"không có thư mục dữ liệu {data_dir}")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"thư mục đích {dest} đã có dữ liệu; chọn một thư mục mới")
    old_umask = os.umask(PRIVATE_UMASK)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        report = Report()
        for src in sorted(data_dir.rglob("*")):
            rel = src.relative_to(data_dir)
            if not src.is_file() or src.name.startswith(".") or src.name.endswith(SKIP_SUFFIXES):
                continue
            if src.name in SECRET_NAMES and not _is_live_sqlite(src) and not with_secrets:
                report.skipped_secrets.append(str(rel))
                continue
            dst = dest / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if rel.parts[0] == "snapshots":
                if _link_or_copy(src, dst):
                    report.linked += 1
                else:
                    report.copied += 1
                digest = sha256(src)
                if sha256(dst) != digest:
                    raise BackupError(f"bản sao {rel} khác bản gốc (sha256)")
            elif _is_live_sqlite(src):
                _online_copy(src, dst)
                os.chmod(dst, 0o600)
                report.online += 1
                digest = sha256(dst)
            elif src.name in LOGS:
                _copy_log(src, dst)
                report.copied += 1
                digest = sha256(dst)
            else:
                shutil.copy2(src, dst)
                report.copied += 1
                digest = sha256(dst)
            report.files[str(rel)] = digest
        atomic_write(dest / MANIFEST, orjson.dumps({
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": str(data_dir.resolve()), "with_secrets": with_secrets,
            "files": report.files}, option=orjson.OPT_INDENT_2))
        return report
    finally:
        os.umask(old_umask)


def restore(src: Path, data_dir: Path) -> Report:
    """Put a backup made by :func:`backup` into a new or empty ``data_dir``; every file is
    checked against ``backup.json`` first, so a damaged backup changes nothing."""
    try:
        manifest = orjson.loads((src / MANIFEST).read_bytes())
        files: dict[str, str] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{src} không phải bản sao lưu của diemthi ({exc})") from exc
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"thư mục dữ liệu {data_dir} đã có dữ liệu; khôi phục vào thư mục trống")
    for rel, digest in files.items():
        path = src / rel
        if ".." in Path(rel).parts or not path.is_file():
            raise BackupError(f"bản sao lưu thiếu tệp {rel}")
        if sha256(path) != digest:
            raise BackupError(f"tệp {rel} trong bản sao lưu đã bị hỏng (sha256 không khớp)")
    old_umask = os.umask(PRIVATE_UMASK)
    try:
        report = Report(files=dict(files))
        for rel in files:
            dst = data_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if Path(rel).parts[0] == "snapshots":
                if _link_or_copy(src / rel, dst):
                    report.linked += 1
                else:
                    report.copied += 1
            else:
                shutil.copyfile(src / rel, dst)
                report.copied += 1
            if Path(rel).name in SECRET_NAMES:
                os.chmod(dst, 0o600)
        return report
    finally:
        os.umask(old_umask)
