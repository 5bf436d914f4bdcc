"""Results-day load scenarios for diemthi, with a pass/fail verdict.

    locust -f loadtests/locustfile.py --headless -H URL -u USERS -r RATE -t TIME

Users: students on the API (look up, refresh, mistype) and, when DIEMTHI_ZALO_APP_ID and
DIEMTHI_ZALO_OA_SECRET_KEY are set, the OA chatbot (signed ``user_send_text`` events).
Shape: DIEMTHI_LOADTEST_SHAPE=spike (default; results published at second zero: -u users
arrive within DIEMTHI_LOADTEST_RAMP seconds, hold, then decay until -t ends) or steady
(Locust's own -u/-r/-t). SBDs: DIEMTHI_LOADTEST_SBDS, a score file in any dialect the
importer reads or a text file with one SBD a line; default, the bundled sample.
Verdict: exit 0 when p95, p99 and the failure ratio are within DIEMTHI_LOADTEST_P95_MS,
DIEMTHI_LOADTEST_P99_MS and DIEMTHI_LOADTEST_MAX_FAILURE_RATIO; 1 otherwise, with reasons.
"""

from __future__ import annotations

import itertools
import os
import random
import time
import uuid
from pathlib import Path

import orjson
from locust import FastHttpUser, LoadTestShape, between, events, task
from locust.runners import WorkerRunner

from diemthi.chatbot.signature import sign
from diemthi.dialects import SBD, DialectError, open_table

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
ENV = os.environ

P95_MS = float(ENV.get("DIEMTHI_LOADTEST_P95_MS", "500"))
P99_MS = float(ENV.get("DIEMTHI_LOADTEST_P99_MS", "1000"))
MAX_FAILURE_RATIO = float(ENV.get("DIEMTHI_LOADTEST_MAX_FAILURE_RATIO", "0.01"))
SHAPE = ENV.get("DIEMTHI_LOADTEST_SHAPE", "spike").strip().lower()
RAMP_SECONDS = float(ENV.get("DIEMTHI_LOADTEST_RAMP", "5"))
ZALO_APP_ID = ENV.get("DIEMTHI_ZALO_APP_ID", "")
ZALO_OA_SECRET_KEY = ENV.get("DIEMTHI_ZALO_OA_SECRET_KEY", "")

if SHAPE not in ("spike", "steady"):
    raise SystemExit(f"DIEMTHI_LOADTEST_SHAPE must be spike or steady, not {SHAPE!r}")


def load_sbds(path: Path) -> list[str]:
    """SBDs from a score file (any dialect the importer reads) or one-per-line text."""
    try:
        table = open_table(path)
    except DialectError:
        table = None
    found: list[str] = []
    if table is not None:
        column = table.columns[SBD]
        for chunk in table.chunks():
            found += [cells[column].strip() for cells in chunk.table()[1] if len(cells) > column]
    else:
        found = path.read_text(encoding="utf-8-sig").split()
    return [s for s in found if len(s) == 8 and s.isdigit() and s.isascii()]


def _sbds() -> list[str]:
    given = ENV.get("DIEMTHI_LOADTEST_SBDS")
    paths = [Path(given)] if given else sorted(SAMPLE.glob("*.csv"))
    sbds = [s for p in paths for s in load_sbds(p)]
    if not sbds:
        raise SystemExit(f"no SBDs found in {', '.join(map(str, paths))}")
    return sbds


SBDS = _sbds()


def mistype(sbd: str) -> tuple[str, tuple[int, ...]]:
    """A typo as people make them, and the statuses that are then correct answers."""
    kind = random.randrange(3)
    i = random.randrange(8)
    if kind == 0:  # a digit dropped
        return sbd[:i] + sbd[i + 1:], (400,)
    if kind == 1:  # a digit doubled
        return sbd[:i] + sbd[i] + sbd[i:], (400,)
    digit = random.choice([d for d in "0123456789" if d != sbd[i]])  # a digit wrong
    return sbd[:i] + digit + sbd[i + 1:], (200, 404)


class Student(FastHttpUser):
    """A student or parent on the web page: looks up, refreshes, sometimes mistypes."""

    weight = 4
    wait_time = between(1, 4)

    def scores(self, sbd: str, expected: tuple[int, ...], name: str,
               etag: str | None = None) -> str | None:
        headers = {"If-None-Match": etag} if etag else {}
        with self.client.get(f"/v1/scores/{sbd}", headers=headers, name=name,
                             catch_response=True) as r:
            if r.status_code in expected:
                r.success()  # an expected 404 or 400 is a correct answer
            else:
                r.failure(f"unexpected status {r.status_code} for {sbd}")
            return r.headers.get("etag")

    @task(8)
    def look_up_and_refresh(self) -> None:
        sbd = random.choice(SBDS)
        etag = self.scores(sbd, (200,), "/v1/scores/[sbd]")
        for _ in range(random.randint(0, 3)):  # refreshing, as people do on results day
            time.sleep(random.uniform(0.5, 2))
            conditional = etag if random.random() < 0.5 else None
            self.scores(sbd, (200, 304) if conditional else (200,), "/v1/scores/[sbd] refresh",
                        conditional)

    @task(1)
    def mistyped(self) -> None:
        sbd, expected = mistype(random.choice(SBDS))
        self.scores(sbd, expected, "/v1/scores/[typo]")


_TEMPLATES = ("{sbd}", "SBD {sbd}", "tra diem {sbd}", "Cho em tra điểm số báo danh {sbd} ạ",
              "{spaced}", "sbd: {spaced}")
_msg_ids = itertools.count()


class ChatbotUser(FastHttpUser):
    """Zalo delivering what students type to the OA, as signed webhook events."""

    weight = 1
    wait_time = between(1, 4)
    abstract = not (ZALO_APP_ID and ZALO_OA_SECRET_KEY)  # off without the settings

    @task
    def send_text(self) -> None:
        sbd = random.choice(SBDS)
        text = random.choice(_TEMPLATES).format(sbd=sbd, spaced=f"{sbd[:2]} {sbd[2:5]} {sbd[5:]}")
        timestamp = str(int(time.time() * 1000))
        body = orjson.dumps({
            "app_id": ZALO_APP_ID, "event_name": "user_send_text", "timestamp": timestamp,
            "sender": {"id": f"user-{random.randrange(10**9)}"}, "recipient": {"id": "oa"},
            "message": {"text": text, "msg_id": f"{uuid.uuid4().hex}{next(_msg_ids)}"}})
        headers = {"Content-Type": "application/json",
                   "X-ZEvent-Signature": sign(ZALO_APP_ID, body, timestamp, ZALO_OA_SECRET_KEY)}
        with self.client.post("/zalo/webhook", data=body, headers=headers, name="/zalo/webhook",
                              catch_response=True) as r:
            if r.status_code == 200:
                r.success()
            else:
                r.failure(f"unexpected status {r.status_code}")


if SHAPE == "spike":
    class ResultsPublished(LoadTestShape):
        """Second zero: results are out. Users arrive within RAMP seconds up to -u, hold for
        40% of -t, then decay to a fifth of the peak until -t ends."""

        use_common_options = True  # -u is the peak, -t the whole run

        def tick(self) -> tuple[int, float] | None:
            options = self.runner.environment.parsed_options  # type: ignore[union-attr]
            peak = max(1, int(options.num_users or 100))
            total = float(options.run_time or 60)
            t = self.get_run_time()
            if t >= total:
                return None
            ramp = min(RAMP_SECONDS, total / 4)
            if t < ramp:
                return min(peak, max(1, round(peak * (t + 1) / ramp))), peak / ramp * 2
            hold_end = ramp + 0.4 * (total - ramp)
            if t < hold_end:
                return peak, peak
            left = (t - hold_end) / max(1e-9, total - hold_end)
            return max(1, round(peak * (1 - 0.8 * left))), peak


@events.init.add_listener
def _note(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    if isinstance(environment.runner, WorkerRunner):
        return
    print(f"diemthi load test: {len(SBDS)} SBDs, shape {SHAPE}; thresholds p95 <= {P95_MS:g} "
          f"ms, p99 <= {P99_MS:g} ms, failures <= {MAX_FAILURE_RATIO:.2%}")
    if ChatbotUser.abstract:
        print("note: chatbot traffic skipped (set DIEMTHI_ZALO_APP_ID and "
              "DIEMTHI_ZALO_OA_SECRET_KEY to the server's values to include it)")


def verdict(stats) -> list[str]:  # type: ignore[no-untyped-def]
    """Reasons the run failed; empty when every threshold held."""
    total = stats.total
    reasons = []
    if total.num_requests == 0:
        return ["no request was made"]
    if total.fail_ratio > MAX_FAILURE_RATIO:
        reasons.append(f"failure ratio {total.fail_ratio:.2%} > {MAX_FAILURE_RATIO:.2%} "
                       f"({total.num_failures} of {total.num_requests})")
    for q, limit in ((0.95, P95_MS), (0.99, P99_MS)):
        value = total.get_response_time_percentile(q)
        if value > limit:
            reasons.append(f"p{int(q * 100)} {value:.0f} ms > {limit:g} ms")
    return reasons


@events.quitting.add_listener
def _verdict(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    if isinstance(environment.runner, WorkerRunner):
        return  # the master decides
    total = environment.stats.total
    reasons = verdict(environment.stats)
    print(f"\ndiemthi verdict: {total.num_requests} requests, {total.num_failures} failed, "
          f"p95 {total.get_response_time_percentile(0.95):.0f} ms, "
          f"p99 {total.get_response_time_percentile(0.99):.0f} ms")
    if reasons:
        print("FAIL: " + "; ".join(reasons))
        environment.process_exit_code = 1
    else:
        print("PASS: every threshold held")
        environment.process_exit_code = 0
