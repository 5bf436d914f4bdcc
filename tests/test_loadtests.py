"""The Locust scenarios, run for real (in subprocesses: Locust patches the process with
gevent) against the real server on loopback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from diemthi.app import create_app
from diemthi.importer import import_files
from diemthi.settings import load
from tests.conftest import ROOT, SAMPLE, write
from tests.servers import LiveServer

LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
LOCUST = Path(sys.executable).with_name("locust")


def locust(url: str, env: dict, seconds: int = 4, users: int = 10) -> subprocess.CompletedProcess:
    return subprocess.run([str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "-H", url,
                           "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
                           "--only-summary"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def python(code: str, env: dict | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **(env or {})},
                         capture_output=True, text=True, timeout=60, cwd=ROOT / "loadtests")
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def server(data_dir):
    import_files(data_dir, 2026, SAMPLE, activate=True)
    settings = {"data_dir": str(data_dir), "zalo_app_id": "app", "zalo_oa_secret_key": "k",
                "zalo_access_token": "t", "zalo_api_base": "http://127.0.0.1:9"}
    with LiveServer(create_app(load(settings, environ={}))) as url:
        yield url


# Real runs judge statuses only: this machine's latency must not decide a test. The
# latency thresholds are judged on made-up stats in test_verdict_judges_the_stats_it_is_given.
NO_LATENCY_LIMIT = {"DIEMTHI_LOADTEST_P95_MS": "1e12", "DIEMTHI_LOADTEST_P99_MS": "1e12"}


def test_steady_run_passes_with_chatbot_traffic(server):
    env = {"DIEMTHI_LOADTEST_SHAPE": "steady", "DIEMTHI_ZALO_APP_ID": "app",
           "DIEMTHI_ZALO_OA_SECRET_KEY": "k", **NO_LATENCY_LIMIT}
    out = locust(server, env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS: every threshold held" in out.stdout
    assert "/zalo/webhook" in out.stdout + out.stderr and "/v1/scores/[sbd]" in out.stdout + out.stderr
    assert "5000 SBDs" in out.stdout


def test_spike_run_passes_and_says_chatbot_traffic_was_skipped(server):
    out = locust(server, {"DIEMTHI_LOADTEST_SHAPE": "spike", **NO_LATENCY_LIMIT})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS: every threshold held" in out.stdout
    assert "chatbot traffic skipped" in out.stdout


def test_verdict_judges_the_stats_it_is_given():
    code = """
import json
from locust.stats import RequestStats
import locustfile as l

def stats(fast, slow, slow_ms, failures=0):
    s = RequestStats()
    for i in range(fast + slow):
        s.log_request("GET", "/v1/scores/[sbd]", 10 if i < fast else slow_ms, 100)
    for _ in range(failures):
        s.log_error("GET", "/v1/scores/[sbd]", "boom")
    return s

print(json.dumps([l.verdict(stats(100, 0, 0)), l.verdict(stats(90, 10, 700)),
                  l.verdict(stats(98, 2, 1500)), l.verdict(stats(100, 0, 0, failures=5)),
                  l.verdict(RequestStats())]))
"""
    env = {"DIEMTHI_LOADTEST_P95_MS": "500", "DIEMTHI_LOADTEST_P99_MS": "1000",
           "DIEMTHI_LOADTEST_MAX_FAILURE_RATIO": "0.01"}
    ok, p95, p99, failed, empty = json.loads(python(code, env).splitlines()[-1])
    assert ok == []
    assert p95 == ["p95 700 ms > 500 ms"]  # p99 of that run is 700 too: within 1000
    assert p99 == ["p99 1500 ms > 1000 ms"]
    assert len(failed) == 1 and failed[0].startswith("failure ratio 5.00% > 1.00%")
    assert empty == ["no request was made"]


def test_unexpected_statuses_fail_the_run(tmp_path):
    async def broken(request):
        return Response(b"oops", 500)
    app = Starlette(routes=[Route("/v1/scores/{sbd}", broken)])
    with LiveServer(app) as url:
        out = locust(url, {"DIEMTHI_LOADTEST_SHAPE": "steady"}, seconds=3)
    assert out.returncode == 1
    assert "FAIL: failure ratio 100.00%" in out.stdout


def test_sbds_from_any_dialect_or_plain_text(tmp_path):
    text = write(tmp_path / "sbds.txt", "01000001\n01000002\n\n0100003\n")
    excel = write(tmp_path / "x.csv", "\ufeffSTT;Số báo danh;Toán\r\n1;79000001;7,5\r\n")
    code = ("import json, locustfile as l; from pathlib import Path; "
            f"print(json.dumps([l.load_sbds(Path({str(text)!r})), l.load_sbds(Path({str(excel)!r})), len(l.SBDS)]))")
    plain, vietnamese, count = json.loads(python(code, {"DIEMTHI_LOADTEST_SBDS": str(text)}).splitlines()[-1])
    assert plain == ["01000001", "01000002"] and vietnamese == ["79000001"] and count == 2


def test_mistypes_and_their_expected_answers():
    code = ("import json, random, locustfile as l; random.seed(5); "
            "print(json.dumps([l.mistype('01234567') for _ in range(300)]))")
    typos = json.loads(python(code).splitlines()[-1])
    assert {len(t) for t, _ in typos} == {7, 8, 9}
    for typo, expected in typos:
        assert (expected == [400]) == (len(typo) != 8)
        assert typo != "01234567"


def test_spike_shape_rises_in_seconds_holds_and_decays():
    code = """
import json, types, locustfile as l
shape = l.ResultsPublished()
shape.runner = types.SimpleNamespace(environment=types.SimpleNamespace(
    parsed_options=types.SimpleNamespace(num_users=100, run_time=60)))
out = []
for t in [0, 2, 4.5, 10, 20, 40, 59, 60]:  # hold ends at 5 + 0.4 * 55 = 27 s
    shape.get_run_time = lambda t=t: t
    out.append(shape.tick())
print(json.dumps(out))
"""
    ticks = json.loads(python(code, {"DIEMTHI_LOADTEST_RAMP": "5"}).splitlines()[-1])
    users = [t[0] if t else None for t in ticks]
    assert users[0] < 50 and users[2] == 100 and users[3] == 100 and users[4] == 100
    assert 20 <= users[6] < 40 and users[5] < 100 and users[7] is None
