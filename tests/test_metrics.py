"""/metrics: in process for one worker; a real `diemthi serve --workers 2` for the sum."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from diemthi.lookup import Lookup
from diemthi.metrics import Metrics
from tests.servers import free_port
from tests.test_app import publish


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scores_requests(text: str, status: str = "200") -> float:
    return samples(text).get(("diemthi_http_requests_total",
                              (("route", "/v1/scores/{sbd}"), ("status", status))), 0)


def test_workers_figures_are_summed_from_their_files(tmp_path):
    """Two Metrics sharing one directory, as two workers do: each scrape is the sum."""
    a, b = Metrics(Lookup(tmp_path), tmp_path), Metrics(Lookup(tmp_path), tmp_path)
    for m, n in ((a, 3), (b, 4)):
        for _ in range(n):
            m.observe("/v1/scores/{sbd}", 200, 0.002)
        m.lookup.stats.hits += n
    b.shared.flush()  # the other worker's last periodic write
    got = samples(a.render().decode())
    assert scores_requests(a.render().decode()) == 7
    assert got[("diemthi_cache_hits_total", ())] == 7
    assert got[("diemthi_worker_processes", ())] == 2
    bucket = ("diemthi_http_request_duration_seconds_bucket",
              (("le", "0.0025"), ("route", "/v1/scores/{sbd}")))
    assert got[bucket] == 7


def test_one_metrics_view_for_two_workers(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,5,5,,,,\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    before = set(Path(tempfile.gettempdir()).glob("diemthi-metrics-*"))
    proc = subprocess.Popen([sys.executable, "-m", "diemthi", "serve", "--data-dir",
                             str(data_dir), "--port", str(port), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        ours = set(Path(tempfile.gettempdir()).glob("diemthi-metrics-*")) - before
        assert len(ours) == 1  # the workers' private directory
        sent, previous = 0, -1.0
        deadline = time.monotonic() + 60
        while True:
            for _ in range(20):  # a new connection each: the kernel spreads them
                assert httpx.get(f"{url}/v1/scores/01000001").status_code == 200
                sent += 1
            text = httpx.get(f"{url}/metrics").text
            got = samples(text)
            counted = scores_requests(text)
            assert counted >= previous, "a counter went backwards between scrapes"
            previous = counted
            # both workers answered and their figures are in one answer
            if counted == sent and got[("diemthi_worker_processes", ())] == 2:
                break
            assert time.monotonic() < deadline, (counted, sent, got)
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert not any(p.exists() for p in ours)  # removed when the server stops


def test_counters_made_by_other_modules_are_summed_too(tmp_path):
    """Metrics.counter in two processes (as two workers, with PROMETHEUS_MULTIPROC_DIR
    set before prometheus_client is imported, as `diemthi serve` does): one sum."""
    code = ("import sys; from pathlib import Path; from diemthi.lookup import Lookup; "
            "from diemthi.metrics import Metrics; d = Path(sys.argv[1]); "
            "m = Metrics(Lookup(d), d); c = m.counter('diemthi_test_events', 'x', ('kind',)); "
            "c.labels('a').inc(int(sys.argv[2])); sys.stdout.write(m.render().decode())")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (2, 5):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(n)], env=env,
                             capture_output=True, text=True, check=True).stdout
    assert samples(out)[("diemthi_test_events_total", (("kind", "a"),))] == 7
