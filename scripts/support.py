"""What the benchmark and load-test scripts share: a free loopback port, waiting for a
server to answer, the Debian tools they drive, one wrk run and its result."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Appended to every wrk script: wrk prints its summary as one machine-readable line.
WRK_DONE = r"""
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %d, "seconds": %f, "p50": %d, "p99": %d, ' ..
    '"non2xx": %d, "errors": %d}\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def run_wrk(port: int, lua: Path, seconds: int, connections: int) -> dict:
    """One wrk run (one thread) against 127.0.0.1:PORT with a script that ends in WRK_DONE:
    its result, with ``rps``, requests per second."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(lua),
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         check=True).stdout
    result = json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:])
    result["rps"] = result["requests"] / result["seconds"]
    return result


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


DEPLOY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy")


def edge_prefix(listen_port: int, app_port: int, unlimited: bool = False,
                https_port: int | None = None, http_port: int | None = None) -> str:
    """A fresh nginx prefix (a temporary directory) holding a copy of deploy/ in which only
    the ports differ from the shipped files: the plain proxy's, the app's, and the HTTPS
    and port-80 servers' (free loopback ports unless given; 443 and 80 keep them as
    shipped), and, when ``unlimited``, the per-client rate and burst (benchmarks send
    everything from one address; the limit is still checked on every request). A
    self-signed certificate for 127.0.0.1 is made where the shipped config looks
    (deploy/tls/fullchain.pem, deploy/tls/privkey.pem). Run it with ``nginx -p PREFIX -c
    deploy/nginx.conf``; remove it with shutil.rmtree."""
    import re
    import subprocess
    import tempfile

    prefix = tempfile.mkdtemp(prefix="diemthi-edge-")
    os.chmod(prefix, 0o755)  # nginx's workers (user nobody) must enter it
    for folder in ("logs", "deploy", os.path.join("deploy", "tls")):
        os.mkdir(os.path.join(prefix, folder))
    with open(os.path.join(DEPLOY, "nginx.conf")) as fh:
        conf = fh.read()
    https_port = https_port or free_port()
    http_port = http_port or free_port()
    counts = []
    for pattern, replacement in (
            (r"listen 127\.0\.0\.1:8080;", f"listen 127.0.0.1:{listen_port};"),
            (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{app_port};"),
            (r"listen 443 ssl;", "listen 443 ssl;" if https_port == 443
             else f"listen 127.0.0.1:{https_port} ssl;"),
            (r"listen 80;", "listen 80;" if http_port == 80
             else f"listen 127.0.0.1:{http_port};")):
        conf, n = re.subn(pattern, replacement, conf)
        counts.append(n)
    if counts != [1, 1, 1, 1]:
        raise ValueError("deploy/nginx.conf: expected one line for each of the plain listen, "
                         "the upstream server, the HTTPS listen and the port-80 listen")
    with open(os.path.join(DEPLOY, "diemthi-proxy.conf")) as fh:
        locations = fh.read()
    if unlimited:
        conf = re.sub(r"rate=\S+;", "rate=1000000r/s;", conf)
        locations = re.sub(r"burst=\d+", "burst=1000000", locations)
    with open(os.path.join(prefix, "deploy", "nginx.conf"), "w") as fh:
        fh.write(conf)
    with open(os.path.join(prefix, "deploy", "diemthi-proxy.conf"), "w") as fh:
        fh.write(locations)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", os.path.join(prefix, "deploy", "tls", "privkey.pem"),
                    "-out", os.path.join(prefix, "deploy", "tls", "fullchain.pem")],
                   check=True, capture_output=True)
    return prefix


def need_nginx() -> str:
    return need_tool("nginx", "nginx-light")
