"""Shared fixtures: real files (the shared 2026 data), tiny files we write, data dirs."""

from __future__ import annotations

import csv
import os
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
DA_NANG = SHARED_DATA / "2026-48-da-nang.csv"
CAO_BANG = SHARED_DATA / "2026-04-cao-bang-excel.csv"
SAMPLE = sorted((ROOT / "data" / "sample").glob("*.csv"))


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not here (shared/ sits beside the repository)")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def to_cp1258(text: str) -> bytes:
    """Encode as Excel does for Windows-1258: base letter (maybe with its hat) + tone mark."""
    import unicodedata

    out = b""
    for ch in text:
        try:
            out += ch.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        base, *marks = unicodedata.normalize("NFD", ch)
        if marks:
            composed = unicodedata.normalize("NFC", base + marks[0])
            if len(composed) == 1 and len(marks) > 1:
                base, marks = composed, marks[1:]
        out += (base + "".join(marks)).encode("cp1258")
    return out


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(to_cp1258(text) if encoding == "cp1258" else text.encode(encoding))
    return path


def edited_copy(source: Path, copy: Path, sql: str) -> Path:
    """A copy of a snapshot file with ``sql`` run on it: a broken or old snapshot, made
    the way no import would make it."""
    import sqlite3

    copy.write_bytes(source.read_bytes())
    db = sqlite3.connect(copy)
    try:
        db.executescript(sql)
    finally:
        db.close()
    return copy


def reference_rows(path: Path, delimiter: str, encoding: str) -> dict[str, dict[str, Decimal]]:
    """An independent reading of a clean CSV: SBD -> {header: Decimal score}."""
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        headers = next(reader)
        out = {}
        for row in reader:
            out[row[0]] = {h: Decimal(v.replace(",", ".")) for h, v in zip(headers[1:], row[1:])
                           if v.strip()}
        return out


@pytest.fixture(autouse=True)
def _no_diemthi_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set what they need; a developer's DIEMTHI_* must not leak in."""
    for name in list(os.environ):
        if name.startswith("DIEMTHI_"):
            monkeypatch.delenv(name)


@pytest.fixture
def zalo(data_dir: Path, tmp_path: Path):
    """The stand-in of Zalo on a free loopback port, with a 2026 snapshot imported (a
    chatbot test module that needs another stand-in defines its own ``zalo``)."""
    from loadtests.zalo_standin import ZaloStandIn
    from tests.chatbot_world import import_scores
    from tests.servers import LiveServer

    import_scores(data_dir, tmp_path)
    stand_in = ZaloStandIn()
    with LiveServer(stand_in.app()) as url:
        stand_in.url = url  # type: ignore[attr-defined]
        yield stand_in
