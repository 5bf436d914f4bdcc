"""Who the client is, and the /metrics gate built on it (a real server on loopback)."""

from __future__ import annotations

import ipaddress
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from diemthi.app import create_app
from diemthi.settings import Settings, load
from tests.conftest import SAMPLE
from tests.servers import LiveServer


def nets(text: str) -> tuple:
    return tuple(ipaddress.ip_network(p) for p in text.split(","))


def test_metrics_default_allows_loopback_only(data_dir: Path) -> None:
    with LiveServer(create_app(Settings(data_dir=data_dir))) as url:
        r = httpx.get(f"{url}/metrics")
        assert r.status_code == 200 and b"diemthi_data_dir_free_bytes" in r.content


def test_metrics_refuses_a_client_outside_the_allowed_networks(data_dir: Path) -> None:
    settings = load({"data_dir": str(data_dir), "metrics_allow": "10.9.0.0/16"}, environ={})
    with LiveServer(create_app(settings)) as url:
        r = httpx.get(f"{url}/metrics")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert httpx.get(f"{url}/healthz").status_code == 200  # only /metrics is gated


def test_metrics_behind_a_trusted_proxy_judges_the_forwarded_client(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, trusted_proxies=nets("127.0.0.1/32"),
                        metrics_allow=nets("10.9.0.0/16"))
    with LiveServer(create_app(settings)) as url:
        allowed = httpx.get(f"{url}/metrics", headers={"x-forwarded-for": "10.9.1.2"})
        outside = httpx.get(f"{url}/metrics", headers={"x-forwarded-for": "203.0.113.7"})
        assert allowed.status_code == 200 and outside.status_code == 403


def test_cli_creates_nothing_other_users_can_read(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    subprocess.run([sys.executable, "-m", "diemthi", "import", "--data-dir", str(data_dir),
                    "--year", "2026", "--activate", *map(str, SAMPLE)], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": ""})
    for path in [data_dir, *data_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o007 == 0, (path, oct(mode))
    snapshot = next((data_dir / "snapshots").glob("*.sqlite"))
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o640
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o750


def test_serve_warns_about_a_secret_file_others_can_read(tmp_path: Path) -> None:
    from tests.servers import free_port

    data_dir = tmp_path / "d"
    data_dir.mkdir()
    tokens = data_dir / "zalo-tokens.json"
    tokens.write_text("{}")
    os.chmod(tokens, 0o644)
    proc = subprocess.Popen([sys.executable, "-m", "diemthi", "serve", "--data-dir",
                             str(data_dir), "--port", str(free_port())],
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "zalo-tokens.json" in first and "chmod 600" in first
