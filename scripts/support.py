"""What the benchmark and load-test scripts share: a free loopback port, waiting for a
server to answer, the Debian tools they drive."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 120,
               interval: float = 0.2) -> None:
    """Until ``url`` answers 200; exits the script if it never does (or ``proc`` dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(interval)
    sys.exit(f"not ready: {url}")


def need_tool(command: str, package: str) -> str:
    """The path of ``command``; installs its Debian ``package`` when missing (as
    `make test` does, scripts/system_deps.sh), or exits saying what to install."""
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if found is None:
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run(["bash", os.path.join(here, "system_deps.sh"), package], check=False)
        found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if found is None:
        sys.exit(f"{command} is needed: apt-get install {package}")
    return found


def need_wrk() -> str:
    return need_tool("wrk", "wrk")
