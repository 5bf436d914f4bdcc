"""National distributions: import, refusals, ranks and equivalents counted in them, a
running server following them, and synthetic data drawn from them."""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner

from diemthi import national, standing, store
from diemthi.app import create_app
from diemthi.cli import cli
from diemthi.importer import import_files
from diemthi.settings import load
from tests.conftest import CAO_BANG, ROOT, need, write
from tests.servers import LiveServer
from tests.test_standing import (KEYS, by_key, expected_equivalent, expected_rank, hundredths,
                                 read_candidates)

REFERENCE = ROOT.parent / "shared" / "reference" / "national-distributions-2016-2026.csv"
ODD = "04999999"  # a Cao Bằng SBD with a toan score the nation never got


def reference(year: int) -> dict[str, Counter]:
    """subject -> hundredths -> candidates, read from the shared reference table."""
    out: dict[str, Counter] = {}
    with open(need(REFERENCE), encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if int(row["year"]) == year:
                out.setdefault(row["subject"], Counter())[hundredths(row["score"])] += \
                    int(row["count"])
    return out


def national_rank(counts: Counter, v: int) -> dict:
    return {"higher": sum(c for s, c in counts.items() if s > v), "equal": counts.get(v, 0),
            "of": sum(counts.values()), "source": "national"}


@pytest.fixture(scope="module")
def province(tmp_path_factory):
    """A province's deployment: Cao Bằng's 2026 file and one odd candidate; no 2025."""
    tmp = tmp_path_factory.mktemp("national")
    data_dir = tmp / "data"
    odd = write(tmp / "odd.csv", f"sbd,toan,ngu_van,vat_li,hoa_hoc\n{ODD},0.01,6.5,7,8\n")
    import_files(data_dir, 2026, [need(CAO_BANG), odd], activate=True)
    national.import_bundled(data_dir, 2026)
    national.import_bundled(data_dir, 2025)
    candidates = read_candidates(CAO_BANG, ";", "utf-8-sig",
                                 keys=["sbd", *KEYS[:8], *KEYS[9:]])
    candidates[ODD] = {"toan": 1, "ngu_van": 650, "vat_li": 700, "hoa_hoc": 800, "A00": 1501,
                       "C01": 1351}
    return data_dir, candidates


def documents(data_dir: Path, year: int = 2026) -> dict[str, dict]:
    basis = standing.bases(data_dir)[year]
    built = standing.build(data_dir, basis)
    info = store.get_snapshot(data_dir, basis.snapshot)
    return {sbd: orjson.loads(store.lookup(info, sbd, built)) for sbd in
            [f"{n:08d}" for n, in store.connect_readonly(info.path).execute(
                "SELECT sbd FROM candidates")]}


def test_ranks_and_equivalents_count_the_nation(province):
    data_dir, candidates = province
    nation26, nation25 = reference(2026), reference(2025)
    assert 1 not in nation26["toan"]  # the odd score: absent from the distribution
    snapshot = by_key(candidates)
    docs = documents(data_dir)
    memo: dict = {}
    for sbd, values in candidates.items():
        doc = docs[sbd]
        equivalents = {}
        for key, v in values.items():
            if key in nation26:
                want = national_rank(nation26[key], v)
            else:  # combinations stay counted in the snapshot
                want = {**expected_rank(snapshot[key], v), "source": "snapshot"}
            assert doc["ranks"][key]["nation"] == want, (sbd, key)
            if key in nation25:  # 2025 has no snapshot here: its national distribution
                args = (key, want["higher"], want["of"])
                if args not in memo:
                    memo[args] = expected_equivalent(nation25[key], *args[1:])
                equivalents[key] = memo[args]
        assert doc["previous_year"] == {"year": 2025, "equivalents": equivalents}
    odd = docs[ODD]["ranks"]["toan"]["nation"]
    assert odd["equal"] == 0 and odd["higher"] == sum(nation26["toan"].values()) - \
        sum(c for s, c in nation26["toan"].items() if s <= 1)


def test_a_subject_absent_from_the_distribution_stays_counted_in_the_snapshot(tmp_path,
                                                                              data_dir):
    rows = "".join(f"01{i:06d},{i % 10},{i % 7},{i % 4}\n" for i in range(1, 41))
    import_files(data_dir, 2026, [write(tmp_path / "a.csv", "sbd,toan,ngu_van,tin_hoc\n" + rows)],
                 activate=True)
    national.import_file(data_dir, 2026, write(
        tmp_path / "n.csv", "subject,score,count\ntoan,5,100\ntoan,9.5,10\ntoan,9,0\n"))
    doc = documents(data_dir)["01000009"]
    assert doc["ranks"]["toan"]["nation"] == {"higher": 10, "equal": 0, "of": 110,
                                              "source": "national"}
    assert "previous_year" not in doc
    national.import_file(data_dir, 2025, write(
        tmp_path / "m.csv", "subject,score,count\ntoan,4,10\ntoan,8,10\ntoan,6,0\n"))
    doc = documents(data_dir)["01000009"]  # 10 of 110 above it: last year, 8 had none above
    assert doc["previous_year"] == {"year": 2025, "equivalents": {"toan": 8.0}}
    assert doc["ranks"]["tin_hoc"]["nation"]["source"] == "snapshot"
    assert doc["ranks"]["ngu_van"]["nation"]["source"] == "snapshot"


def test_the_national_stats_document_is_the_distribution(province):
    data_dir, _ = province
    built = standing.build(data_dir, standing.bases(data_dir)[2026])
    doc = built.stats_document("national")
    nation = reference(2026)
    assert doc["source"] == "national" and doc["province"] is None and doc["year"] == 2026
    assert list(doc["distributions"]) == [k for k in KEYS if k in nation]
    for key, d in doc["distributions"].items():
        assert d["count"] == sum(nation[key].values())
        assert d["histogram"] == [[v / 100, c] for v, c in sorted(nation[key].items()) if c]
    assert doc["distributions"]["toan"]["count"] == 1_192_437


GOOD = "year,subject,score,count\n2026,toan,5,10\n2026,toan,7.5,3\n2026,ngu_van,6,4\n"


@pytest.mark.parametrize("text,line,why", [
    ("year,subject,score,count\n2026,toan,5,1\n2026,van_hoc,5,1\n", 3, "không có trong danh mục"),
    ("year,subject,score,count\n2026,toan,10.5,1\n", 2, "từ 0 đến 10"),
    ("year,subject,score,count\n2026,toan,7.555,1\n", 2, "quá hai chữ số"),
    ("year,subject,score,count\n2026,toan,7,-1\n", 2, "số nguyên không âm"),
    ("year,subject,score,count\n2026,toan,7,1.5\n", 2, "số nguyên không âm"),
    ("year,subject,score,count\n2026,toan,7,1\n2026,ngu_van,7,1\n2026,toan,7.00,2\n", 4,
     "đã có ở dòng 2"),
    ("year,subject,score,count\n2025,toan,7,1\n", 2, "khác năm"),
    ("year,subject,score,count\n2026,gdcd,7,1\n", 2, "không thi năm 2026"),
])
def test_refusals_name_the_line_and_keep_the_previous(data_dir, tmp_path, text, line, why):
    national.import_file(data_dir, 2026, write(tmp_path / "good.csv", GOOD))
    before = national.path_of(data_dir, 2026).read_bytes()
    bad = write(tmp_path / "bad.csv", text)
    r = CliRunner().invoke(cli, ["import-distribution", "--data-dir", str(data_dir), "--year",
                                 "2026", str(bad)])
    assert r.exit_code == 1 and f"bad.csv:{line}:" in r.output and why in r.output, r.output
    assert national.path_of(data_dir, 2026).read_bytes() == before


def test_a_staff_file_in_excel_dialect(data_dir, tmp_path):
    f = write(tmp_path / "bo.csv", "\ufeffMôn;Điểm;Số thí sinh\r\nToán;7,75;120\r\n"
                                   "Ngữ văn;8;300\r\n")
    assert national.import_file(data_dir, 2026, f) == {"toan": {775: 120}, "ngu_van": {800: 300}}
    assert oct(national.path_of(data_dir, 2026).stat().st_mode & 0o777) == "0o600"


def test_cli_bundled_one_year_and_remove(data_dir):
    run = CliRunner().invoke
    r = run(cli, ["import-distribution", "--data-dir", str(data_dir), "--bundled", "--year",
                  "2026"])
    assert r.exit_code == 0 and "toan 1192437" in r.output
    assert national.years(data_dir) == [2026]
    r = run(cli, ["import-distribution", "--data-dir", str(data_dir), "--remove", "--year",
                  "2026"])
    assert r.exit_code == 0 and national.years(data_dir) == []
    r = run(cli, ["import-distribution", "--data-dir", str(data_dir), "--bundled", "--year",
                  "2015"])
    assert r.exit_code == 1 and "2016–2026" in r.output
    assert run(cli, ["import-distribution", "--data-dir", str(data_dir)]).exit_code == 2


def test_a_running_server_picks_up_an_import_and_a_removal(data_dir, tmp_path):
    rows = "".join(f"01{i:06d},{i % 10},5\n" for i in range(1, 21))
    import_files(data_dir, 2026, [write(tmp_path / "a.csv", "sbd,toan,ngu_van\n" + rows)],
                 activate=True)
    app = create_app(load({"data_dir": str(data_dir), "reload_interval": 0.1}))

    def wait_for(client: httpx.Client, source: str) -> httpx.Response:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = client.get("/v1/scores/01000007")
            if r.json()["ranks"]["toan"]["nation"]["source"] == source:
                return r
            time.sleep(0.05)
        raise AssertionError(f"still not {source}")

    with LiveServer(app) as url, httpx.Client(base_url=url) as client:
        before = wait_for(client, "snapshot")
        assert client.get("/v1/stats/2026/national").status_code == 404
        national.import_bundled(data_dir, 2026)
        after = wait_for(client, "national")
        assert after.headers["etag"] != before.headers["etag"]
        assert client.get("/v1/scores/01000007",
                          headers={"If-None-Match": before.headers["etag"]}).status_code == 200
        r = client.get("/v1/stats/2026/national")
        assert r.status_code == 200 and r.json()["distributions"]["toan"]["count"] == 1_192_437
        national.remove(data_dir, 2026)
        assert wait_for(client, "snapshot").headers["etag"] == before.headers["etag"]


def test_synthetic_at_the_national_count_reproduces_2026_exactly():
    from diemthi import synthetic

    n = synthetic.national_count(2026)
    columns = synthetic.draw(n, 2026, seed=11)
    nation = reference(2026)
    assert set(columns) == set(nation)
    for key, column in columns.items():
        got = Counter(column)
        got.pop(-1, None)  # did not sit
        assert got == +nation[key], key
    electives = Counter(sum(column[i] >= 0 for key, column in columns.items()
                            if key not in ("toan", "ngu_van")) for i in range(0, n, 97))
    assert max(electives) == 2


@pytest.mark.parametrize("year", [2016, 2019, 2025, 2026])
def test_synthetic_rows_keep_the_year_rules(year):
    from diemthi import synthetic
    from diemthi.reference import subjects_for

    rows = list(synthetic.rows(3000, year, seed=5))
    assert len(rows) == 3000 and len({r["sbd"] for r in rows}) == 3000
    nation = reference(year)
    natural, social = {"vat_li", "hoa_hoc", "sinh_hoc"}, {"lich_su", "dia_li", "gdcd"}
    for row in rows:
        sat = set(row) - {"sbd", "ma_ngoai_ngu"}
        assert sat <= set(subjects_for(year)) and sat <= set(nation)
        assert ("ma_ngoai_ngu" in row) == ("ngoai_ngu" in sat)
        if year >= 2025:
            assert len(sat - {"toan", "ngu_van"}) <= 2
        else:
            assert sat - {"toan", "ngu_van", "ngoai_ngu"} <= natural | social
    taken = Counter(k for row in rows for k in row if k in nation)
    full = synthetic.national_count(year)
    for key, counts in nation.items():  # in proportion to the nation
        assert abs(taken[key] - sum(counts.values()) * 3000 / full) <= 2, key
    assert ("gdcd" in taken) == (2017 <= year <= 2025)
