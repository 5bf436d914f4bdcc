"""Ranks, equivalents and phổ điểm against an independent computation over real files.

The expected values come from the CSV files read here with the csv module and counted in
plain Python (Decimal, Fraction, sorted lists): nothing of diemthi's importer or standing.
"""

from __future__ import annotations

import csv
from bisect import bisect_left, bisect_right
from collections import Counter
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import orjson
import pytest

from diemthi import standing, store
from diemthi.importer import import_files
from diemthi.synthetic import write_csv
from tests.conftest import CAO_BANG, DA_NANG, edited_copy, need, write

KEYS = ["toan", "ngu_van", "ngoai_ngu", "vat_li", "hoa_hoc", "sinh_hoc", "lich_su", "dia_li",
        "gdcd", "gdktpl", "tin_hoc", "cn_cong_nghiep", "cn_nong_nghiep"]
# combination -> (its three subjects, the language code it needs, if any)
COMBOS = {"A00": (("toan", "vat_li", "hoa_hoc"), None), "A01": (("toan", "vat_li", "ngoai_ngu"), "N1"),
          "A02": (("toan", "vat_li", "sinh_hoc"), None), "B00": (("toan", "hoa_hoc", "sinh_hoc"), None),
          "C00": (("ngu_van", "lich_su", "dia_li"), None), "C01": (("ngu_van", "toan", "vat_li"), None),
          "D01": (("toan", "ngu_van", "ngoai_ngu"), "N1"), "D07": (("toan", "hoa_hoc", "ngoai_ngu"), "N1"),
          **{f"D0{n}": (("toan", "ngu_van", "ngoai_ngu"), f"N{n}") for n in range(2, 7)}}
ONE = "01000001"  # the only candidate of province 01


def hundredths(text: str) -> int:
    return int(Decimal(text.strip().replace(",", ".")) * 100)


def read_candidates(path: Path, delimiter: str, encoding: str,
                    keys: list[str] | None = None) -> dict[str, dict[str, int]]:
    """SBD -> {subject or combination: hundredths}, from the file alone."""
    out = {}
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader)
        names = keys or header
        for row in reader:
            cells = dict(zip(names, row))
            values = {k: hundredths(v) for k, v in cells.items() if k in KEYS and v.strip()}
            language = cells.get("ma_ngoai_ngu", "")
            for code, (subjects, needs) in COMBOS.items():
                if all(s in values for s in subjects) and (needs is None or needs == language):
                    values[code] = sum(values[s] for s in subjects)
            out[row[0]] = values
    return out


def expected_rank(ordered: list[int], v: int) -> dict:
    """Among ``ordered`` (sorted): strictly greater, the same, all."""
    return {"higher": len(ordered) - bisect_right(ordered, v),
            "equal": bisect_right(ordered, v) - bisect_left(ordered, v), "of": len(ordered)}


def expected_equivalent(counts: Counter, higher: int, of: int) -> float:
    """The smallest last-year value t with (last year above t) / (last year) <= higher / of."""
    total = above = sum(counts.values())
    for t in sorted(counts):
        above -= counts[t]
        if Fraction(above, total) <= Fraction(higher, of):
            return t / 100
    raise AssertionError("unreachable: the largest value always qualifies")


@pytest.fixture(scope="module")
def two_years(tmp_path_factory):
    """2026: Đà Nẵng + Cao Bằng + one candidate of Hà Nội; 2025: a synthetic year."""
    tmp = tmp_path_factory.mktemp("standing")
    data_dir = tmp / "data"
    one = write(tmp / "one.csv", f"sbd,toan,ngu_van\n{ONE},7.25,6\n")
    last = write_csv(tmp / "2025.csv", 4000, year=2025, seed=7, province_codes=["48", "04"])
    import_files(data_dir, 2025, [last], activate=True)
    import_files(data_dir, 2026, [need(DA_NANG), need(CAO_BANG), one], activate=True)
    this_year = read_candidates(DA_NANG, ",", "utf-8")
    this_year.update(read_candidates(CAO_BANG, ";", "utf-8-sig", keys=["sbd", *KEYS[:8], *KEYS[9:]]))
    this_year[ONE] = {"toan": 725, "ngu_van": 600}
    return data_dir, this_year, read_candidates(last, ",", "utf-8")


def served_documents(data_dir: Path, year: int) -> tuple[dict[str, dict], standing.Standing]:
    """Every candidate's finished body, as the server builds it."""
    basis = standing.bases(data_dir)[year]
    built = standing.build(data_dir, basis)
    info = store.get_snapshot(data_dir, basis.snapshot)
    envelope = store.envelope(info, built)
    db = store.connect_readonly(info.path)
    try:
        docs = {f"{n:08d}": orjson.loads(envelope.body(f"{n:08d}", body))
                for n, body in db.execute("SELECT sbd, body FROM candidates")}
    finally:
        db.close()
    return docs, built


def by_key(candidates: dict[str, dict[str, int]], province: str | None = None
           ) -> dict[str, list[int]]:
    """key -> the sorted values of the candidates (of one province)."""
    out: dict[str, list[int]] = {}
    for sbd, values in candidates.items():
        if province is None or sbd[:2] == province:
            for key, v in values.items():
                out.setdefault(key, []).append(v)
    return {key: sorted(values) for key, values in out.items()}


def test_ranks_and_equivalents_match_an_independent_count(two_years):
    data_dir, this_year, last_year = two_years
    docs, _ = served_documents(data_dir, 2026)
    assert docs.keys() == this_year.keys()
    nation = by_key(this_year)
    provinces = {p: by_key(this_year, p) for p in {s[:2] for s in this_year}}
    previous = by_key(last_year)
    ties = no_combination = 0
    seen: dict[tuple, float] = {}  # the same rank has the same equivalent: count it once
    for sbd, values in this_year.items():
        doc = docs[sbd]
        assert set(doc["ranks"]) == set(doc["scores"]) | set(doc["combinations"]) == set(values)
        no_combination += not doc["combinations"]
        equivalents = {}
        for key, v in values.items():
            want = expected_rank(nation[key], v)
            assert doc["ranks"][key] == {"nation": {**want, "source": "snapshot"},
                                         "province": expected_rank(provinces[sbd[:2]][key], v)}
            ties += want["equal"] > 1
            if key in previous:
                memo = (key, want["higher"], want["of"])
                if memo not in seen:
                    seen[memo] = expected_equivalent(Counter(previous[key]), want["higher"],
                                                     want["of"])
                equivalents[key] = seen[memo]
        assert doc["previous_year"] == {"year": 2025, "equivalents": equivalents}
    assert ties > 100_000 and no_combination > 1000  # the cases the issue names occur
    assert docs[ONE]["ranks"]["toan"]["province"] == {"higher": 0, "equal": 1, "of": 1}


def test_a_year_without_the_year_before_has_no_previous_year(two_years):
    data_dir, _, last_year = two_years
    docs, _ = served_documents(data_dir, 2025)
    assert docs.keys() == last_year.keys()
    assert all("previous_year" not in doc for doc in docs.values())
    nation = by_key(last_year)
    for sbd, values in list(last_year.items())[:500]:
        assert {k: r["nation"] for k, r in docs[sbd]["ranks"].items()} == \
            {k: {**expected_rank(nation[k], v), "source": "snapshot"} for k, v in values.items()}


def describe(values: list[int], subject: bool) -> dict:
    ordered = sorted(values)
    n = len(ordered)
    mean = (Decimal(sum(ordered)) / n / 100).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    out = {"count": n, "mean": float(mean), "median": ordered[(n + 1) // 2 - 1] / 100}
    if subject:
        out["at_most_1"] = sum(1 for v in ordered if v <= 100)
        out["tens"] = ordered.count(1000)
    out["histogram"] = [[v / 100, c] for v, c in sorted(Counter(ordered).items())]
    return out


def test_stats_documents_match_an_independent_count(two_years):
    data_dir, this_year, _ = two_years
    _, built = served_documents(data_dir, 2026)
    names = {"48": "Thành phố Đà Nẵng", "04": "Tỉnh Cao Bằng", "01": "Thành phố Hà Nội"}
    for scope in (None, "48", "04", "01"):
        doc = built.stats_document(scope)
        values = by_key(this_year, scope)
        people = [s for s in this_year if scope is None or s[:2] == scope]
        assert doc["year"] == 2026 and doc["source"] == "snapshot"
        assert doc["province"] == (None if scope is None else {"code": scope, "name": names[scope]})
        assert doc["candidates"] == len(people)
        assert list(doc["distributions"]) == [k for k in [*KEYS, *sorted(COMBOS)] if k in values]
        for key, got in doc["distributions"].items():
            assert got == describe(values[key], key in KEYS), (scope, key)
        assert orjson.loads(built.stats_body(scope)) == doc
    assert built.stats_document("79") is None and built.stats_document("national") is None


def test_old_snapshots_without_the_table_are_counted_from_their_bodies(two_years, tmp_path):
    data_dir, _, _ = two_years
    info = store.get_snapshot(data_dir, store.active_ids(data_dir)[2026])
    copy = edited_copy(info.path, tmp_path / "old.sqlite", "DROP TABLE distribution")
    assert store.read_distributions(copy) == store.read_distributions(info.path)


def test_equivalent_examples():
    # last year: 10 candidates at 5.00, 10 at 7.00; a candidate with 5 of 20 above
    previous = {500: 10, 700: 10}
    assert standing.equivalents(previous, {800: (5, 1, 20)}) == {800: 700}
    assert standing.equivalents(previous, {600: (10, 1, 20)}) == {600: 500}
    assert standing.equivalents(previous, {900: (0, 1, 20)}) == {900: 700}


def test_median_is_the_lower_one_and_the_mean_rounds_half_up():
    d = standing.describe({500: 1, 600: 1, 700: 1, 800: 1}, True)
    assert d["median"] == 6.0 and d["mean"] == 6.5
    d = standing.describe({1: 1, 2: 1}, True)  # 0.015 -> 0.02
    assert d["mean"] == 0.02 and d["at_most_1"] == 2 and d["tens"] == 0


@pytest.fixture
def small_server(data_dir, tmp_path):
    rows = "".join(f"01{i:06d},{i % 10},5\n" for i in range(1, 21)) + "48000001,9,9\n"
    import_files(data_dir, 2026, [write(tmp_path / "a.csv", "sbd,toan,ngu_van\n" + rows)],
                 activate=True)
    from diemthi.app import create_app
    from diemthi.settings import load
    from tests.servers import LiveServer
    import httpx

    with LiveServer(create_app(load({"data_dir": str(data_dir)}))) as url:
        with httpx.Client(base_url=url) as client:
            yield client


def test_stats_routes_answer_cached_bytes_with_etags(small_server):
    r = small_server.get("/v1/stats/2026")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["candidates"] == 21 and doc["province"] is None
    assert doc["distributions"]["ngu_van"] == {"count": 21, "mean": 5.19, "median": 5.0,
                                               "at_most_1": 0, "tens": 0,
                                               "histogram": [[5.0, 20], [9.0, 1]]}
    assert r.headers["cache-control"] == "public, max-age=300"
    etag = r.headers["etag"]
    assert small_server.get("/v1/stats/2026", headers={"If-None-Match": etag}).status_code == 304
    one = small_server.get("/v1/stats/2026/48")
    assert one.json()["province"] == {"code": "48", "name": "Thành phố Đà Nẵng"}
    assert one.json()["candidates"] == 1 and one.headers["etag"] != etag
    assert small_server.head("/v1/stats/2026/01").status_code == 200


@pytest.mark.parametrize("path,status,code", [
    ("/v1/stats/2025", 404, "year_not_found"), ("/v1/stats/26", 400, "invalid_year"),
    ("/v1/stats/2026/79", 404, "province_not_found"),
    ("/v1/stats/2026/xx", 404, "province_not_found"),
    ("/v1/stats/2026/national", 404, "national_not_found"),
])
def test_stats_errors(small_server, path, status, code):
    r = small_server.get(path)
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_cli_stats_and_lookup_print_what_the_api_serves(data_dir, tmp_path):
    from click.testing import CliRunner

    from diemthi.cli import cli

    rows = "".join(f"01{i:06d},{i % 10},5\n" for i in range(1, 21))
    import_files(data_dir, 2026, [write(tmp_path / "a.csv", "sbd,toan,ngu_van\n" + rows)],
                 activate=True)
    run = CliRunner().invoke
    r = run(cli, ["stats", "--data-dir", str(data_dir), "--json", "--province", "01"])
    built = standing.build(data_dir, standing.bases(data_dir)[2026])
    assert r.exit_code == 0 and orjson.loads(r.output) == built.stats_document("01")
    r = run(cli, ["stats", "--data-dir", str(data_dir)])
    assert r.exit_code == 0 and "Toán: 20 bài, trung bình 4.50" in r.output
    assert run(cli, ["stats", "--data-dir", str(data_dir), "--national"]).exit_code == 1
    r = run(cli, ["lookup", "--data-dir", str(data_dir), "01000009"])
    assert orjson.loads(r.output)["ranks"]["toan"] == {
        "nation": {"higher": 0, "equal": 2, "of": 20, "source": "snapshot"},
        "province": {"higher": 0, "equal": 2, "of": 20}}


def test_stats_wait_for_the_release_like_the_scores(data_dir, tmp_path):
    from datetime import datetime, timedelta, timezone

    import httpx

    from diemthi.app import create_app
    from diemthi.settings import load
    from tests.servers import LiveServer

    import_files(data_dir, 2026, [write(tmp_path / "a.csv", "sbd,toan\n01000001,5\n")],
                 activate=True)
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    with LiveServer(create_app(load({"data_dir": str(data_dir), "release_at": later}))) as url:
        r = httpx.get(url + "/v1/stats/2026/01")
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_published"
    assert r.headers["cache-control"] == "no-store" and int(r.headers["retry-after"]) > 3000


def test_a_compact_standing_writes_the_same_tails(data_dir, tmp_path):
    """Older years keep province ranks as arrays (ready=False): same bytes, every row."""
    rows = "".join(f"{p}{i:06d},{(i * 7) % 41 / 4},{(i * 3) % 37 / 4},{i % 11},N1\n"
                   for p in ("01", "04", "08") for i in range(1, 400))
    f = write(tmp_path / "a.csv", "sbd,toan,ngu_van,ngoai_ngu,ma_ngoai_ngu\n" + rows)
    info = store.get_snapshot(data_dir, import_files(data_dir, 2026, [f]).snapshot_id)
    own = store.read_distributions(info.path)
    provinces = info.manifest["provinces"]
    ready = standing.Standing(2026, info.id, own, provinces)
    compact = standing.Standing(2026, info.id, own, provinces, ready=False)
    assert ready.province and not ready.ranked and compact.ranked and not compact.province
    db = store.connect_readonly(info.path)
    for sbd, stored in db.execute("SELECT printf('%08d', sbd), body FROM candidates"):
        assert compact.tail(sbd[:2], stored) == ready.tail(sbd[:2], stored), sbd
    db.close()
