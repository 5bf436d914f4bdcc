"""Where a candidate stands: ranks, phổ điểm (score distributions), last year's equivalents.

Everything here is computed once per served snapshot, from the distribution tables the
importer stored with it (counts per key, province and exact value), last year's active
snapshot and the national distributions staff imported (``national``). The request path
then turns a stored row into its tail (``"ranks"`` and ``"previous_year"``) with a few
dict lookups and byte concatenations: :meth:`Standing.tail`.

What a year's standing is built from is its :class:`Basis`; when the basis changes (an
activation of this or last year, a national distribution imported or removed), the
lookup builds a new :class:`Standing` and serves it with fresh caches, as on activation.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import zlib
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from itertools import accumulate, chain
from pathlib import Path
from typing import Any, Iterable

import orjson
from cachetools import LRUCache

from . import national, store
from .reference import COMBINATIONS, SUBJECTS, provinces

log = logging.getLogger("diemthi.standing")

NATIONAL = "national"  # the scope of the national distribution in stats documents
Counts = dict[int, int]  # value in hundredths -> candidates


@dataclass(frozen=True)
class Basis:
    """What one year's standing depends on; equal bases give equal bodies."""

    year: int
    snapshot: str
    previous_snapshot: str | None  # the active snapshot of year - 1
    national: tuple | None  # national.version() of this year's distribution
    previous_national: tuple | None  # and of last year's

    @property
    def tag(self) -> str:
        """Names the bodies in ETags: the snapshot id alone while nothing else counts."""
        if self.previous_snapshot is None and self.national is None \
                and self.previous_national is None:
            return self.snapshot
        h = hashlib.sha256(repr(self).encode()).hexdigest()[:8]
        return f"{self.snapshot}~{h}"


def bases(data_dir: Path) -> dict[int, Basis]:
    """The basis of every year with an active snapshot (a few tiny files read)."""
    return bases_for(data_dir, store.active_ids(data_dir))


def bases_for(data_dir: Path, active: dict[int, str]) -> dict[int, Basis]:
    """The basis of each year of ``active`` (year -> the snapshot its pointer names). Last
    year's snapshot counts only when it can be read: a pointer naming a missing or broken
    one is that year's problem; this year is served without it, and rebuilt with it once
    it can be read again (the basis changes then)."""
    def previous(year: int) -> str | None:
        found = active.get(year - 1)
        return found if found is not None and store.snapshot_readable(data_dir, found) \
            else None

    return {year: Basis(year, snapshot_id, previous(year),
                        national.version(data_dir, year), national.version(data_dir, year - 1))
            for year, snapshot_id in active.items()}


def build(data_dir: Path, basis: Basis, ready: bool = True) -> "Standing":
    """Read what ``basis`` names and compute everything (seconds for a national snapshot);
    ``ready``: see :class:`Standing`."""
    info = store.get_snapshot(data_dir, basis.snapshot)
    own = store.read_distributions(info.path)
    previous: tuple[int, dict[str, Counts]] | None = None
    used = basis  # what the bodies are built from, which their ETags name
    if basis.previous_snapshot is not None:
        try:
            last = store.get_snapshot(data_dir, basis.previous_snapshot)
            previous = (last.year, {key: merge(by_province.values()) for key, by_province
                                    in store.read_distributions(last.path).items()})
        except (store.StoreError, sqlite3.Error, OSError) as exc:
            # its manifest read a moment ago, its tables do not: this year is served all
            # the same, as without last year's snapshot (restart once it is repaired)
            log.warning("%s: last year's snapshot %s cannot be read (%s): served without "
                        "it", basis.snapshot, basis.previous_snapshot, exc)
            used = replace(basis, previous_snapshot=None)
    if used.previous_snapshot is None and used.previous_national is not None:
        found = national.load(data_dir, basis.year - 1)
        if found is not None:
            previous = (basis.year - 1, found)
    this_year = national.load(data_dir, basis.year) if basis.national is not None else None
    return Standing(info.year, used.tag, own, info.manifest.get("provinces", {}),
                    this_year, previous, ready)


def alone(info: store.SnapshotInfo) -> "Standing":
    """The standing of a snapshot by itself: no last year, no national distribution."""
    return Standing(info.year, info.id, store.read_distributions(info.path),
                    info.manifest.get("provinces", {}))


def merge(parts: Iterable[Counts]) -> Counts:
    out: Counts = {}
    for part in parts:
        for value, count in part.items():
            out[value] = out.get(value, 0) + count
    return out


def ranks_of(counts: Counts) -> dict[int, tuple[int, int, int]]:
    """Value -> (higher, equal, of) among ``counts``: strictly greater, the same, all."""
    values = sorted(counts, reverse=True)
    of = sum(counts.values())
    above = accumulate((counts[v] for v in values), initial=0)
    return {v: (higher, counts[v], of) for v, higher in zip(values, above)}


def ranks_in(counts: Counts, values: Iterable[int]) -> dict[int, tuple[int, int, int]]:
    """(higher, equal, of) in ``counts`` of each of ``values``, present there or not."""
    ascending = sorted(counts)
    # at_or_below[i]: candidates with one of the i smallest values
    at_or_below = list(accumulate((counts[v] for v in ascending), initial=0))
    of = at_or_below[-1]
    return {v: (of - at_or_below[bisect_right(ascending, v)], counts.get(v, 0), of)
            for v in values}


def equivalents(previous: Counts, ranks: dict[int, tuple[int, int, int]]) -> dict[int, int]:
    """Value -> the smallest previous value t with (previous above t) / (previous all) <=
    higher / of of that value's rank: last year's score that stood as high. Exact, in
    integers (both sides multiplied out)."""
    ascending = sorted(previous)
    # above[i]: previous candidates above ascending[i]; it only falls as i grows
    above = list(accumulate((previous[v] for v in reversed(ascending)), initial=0))[-2::-1]
    total = sum(previous.values())
    out, scaled = {}, {}
    for value, (higher, _, of) in ranks.items():
        keys = scaled.get(of) or scaled.setdefault(of, [-a * of for a in above])
        # keys do not fall as i grows: the first i with keys[i] >= -higher * total
        out[value] = ascending[bisect_left(keys, -higher * total)]
    return out


def _number(hundredths: int) -> float:
    return hundredths / 100


# A score or total in a stored body, as it is written there: a JSON key, then a number.
SCORE = re.compile(rb'"[^"]+":[0-9.]+')


_NONE: dict[bytes, bytes] = {}  # a province none of whose candidates has a score
_NOTHING: dict = {}
STATS_UNPACKED = 8  # phổ điểm documents of one year kept unpacked (~100 KiB each)
PROVINCE_RANK = b'"province":{"higher":%d,"equal":%d,"of":%d}}'  # as _rank writes it


def fragment(key: str, hundredths: int) -> bytes:
    """``b'"toan":7.5'``: how a stored body writes this value of this key (the same
    ``orjson`` text :mod:`diemthi.bodies` writes), which :meth:`Standing.tail` looks up."""
    return orjson.dumps(key) + b":" + orjson.dumps(_number(hundredths))


def _rank(higher: int, equal: int, of: int, source: str | None = None) -> bytes:
    extra = f',"source":"{source}"' if source else ""
    return f'{{"higher":{higher},"equal":{equal},"of":{of}{extra}}}'.encode()


def _pack(document: dict[str, Any]) -> bytes:
    return zlib.compress(orjson.dumps(document), 6)


def _order(keys: Iterable[str]) -> list[str]:
    """Subjects in table order, then combinations by code."""
    present = set(keys)
    return [k for k in chain(SUBJECTS, COMBINATIONS) if k in present]


def describe(counts: Counts, subject: bool) -> dict[str, Any]:
    """count, mean, median, histogram (and for a subject the điểm liệt and the 10s)."""
    ascending = sorted(v for v, c in counts.items() if c)
    count = sum(counts[v] for v in ascending)
    total = sum(v * counts[v] for v in ascending)
    # the lower median: the value at position ceil(count / 2), ascending
    middle = (count + 1) // 2
    median = ascending[bisect_left(list(accumulate(counts[v] for v in ascending)), middle)]
    out: dict[str, Any] = {
        "count": count,
        "mean": _number((2 * total + count) // (2 * count)),  # hundredths, half up
        "median": _number(median),
    }
    if subject:
        out["at_most_1"] = sum(counts[v] for v in ascending if v <= 100)
        out["tens"] = counts.get(1000, 0)
    out["histogram"] = [[_number(v), counts[v]] for v in ascending]
    return out


class Standing:
    """One served year's ranks, equivalents and distribution documents, ready as bytes.

    ``ready=False`` keeps the province ranks as arrays instead of written fragments
    (3 MiB instead of 21 MiB traced for 1.2 million candidates): what a worker serving
    eleven years keeps of the ten that are not the current one."""

    def __init__(self, year: int, tag: str, own: store.Distributions,
                 candidates: dict[str, int], this_national: dict[str, Counts] | None = None,
                 previous: tuple[int, dict[str, Counts]] | None = None, ready: bool = True):
        self.year = year
        self.tag = tag
        names = provinces(year)
        whole = {key: merge(by_province.values()) for key, by_province in own.items()}
        # Keyed by a score as its stored body writes it, b'"toan":7.5' (see :meth:`tail`),
        # one bytes object per (key, value) shared by every table.
        # fragment -> b'"toan":{"nation":{...},'; compact only: -> (key, value in hundredths)
        self.nation: dict[bytes, bytes] = {}
        self.parsed: dict[bytes, tuple[str, int]] = {}
        # ready: province -> fragment -> the key's whole entry,
        # b'"toan":{"nation":{...},"province":{...}}'; else province -> key ->
        # (ascending values, candidates at or above each), the fragment written per request
        self.ready = ready
        self.province: dict[str, dict[bytes, bytes]] = {}
        self.ranked: dict[str, dict[str, tuple[array, array]]] = {}
        self.equivalents: dict[bytes, bytes] = {}  # fragment -> b'"toan":7.25'
        nation_ranks: dict[str, dict[int, tuple[int, int, int]]] = {}
        fragments: dict[str, dict[int, bytes]] = {}  # key -> value -> its fragment
        for key, counts in whole.items():
            if this_national and key in this_national:
                ranks, source = ranks_in(this_national[key], counts), NATIONAL
            else:
                ranks, source = ranks_of(counts), "snapshot"
            nation_ranks[key] = ranks
            name = b'"' + key.encode() + b'":'
            shared = fragments[key] = {v: fragment(key, v) for v in ranks}
            for v, r in ranks.items():
                self.nation[shared[v]] = name + b'{"nation":' + _rank(*r, source) + b","
                if not ready:
                    self.parsed[shared[v]] = (key, v)
            for province, counts_p in own[key].items():
                if ready:  # the key's whole entry, nation and province: one lookup
                    local = self.province.setdefault(province, {})
                    for v, r in ranks_of(counts_p).items():
                        local[shared[v]] = self.nation[shared[v]] + PROVINCE_RANK % r
                else:  # ascending values; above[i]: candidates at or above the i-th
                    ascending = sorted(counts_p)
                    above = list(accumulate((counts_p[v] for v in reversed(ascending)),
                                            initial=0))[::-1]
                    self.ranked.setdefault(province, {})[key] = (
                        array("H", ascending), array("I", above))
        self.previous_year = previous[0] if previous else None
        self.previous_head = b""
        if previous is not None:
            self.previous_head = f',"previous_year":{{"year":{previous[0]},"equivalents":{{'.encode()
            for key, ranks in nation_ranks.items():
                last = previous[1].get(key)
                if not last:
                    continue  # absent last year: left out
                for v, t in equivalents(last, ranks).items():
                    self.equivalents[fragments[key][v]] = b'"' + key.encode() + b'":' \
                        + orjson.dumps(_number(t))
        # The documents are kept as compressed bytes: as dicts they would weigh ten times
        # more, as plain JSON ~100 KiB a province (84 MiB for eleven years); the few
        # asked lately are kept unpacked.
        self.packed: dict[str | None, bytes] = {}
        self.unpacked: LRUCache = LRUCache(maxsize=STATS_UNPACKED)
        self.packed[None] = _pack(self._document(None, whole, sum(candidates.values())))
        by_province: dict[str, dict[str, Counts]] = {}
        for key, parts in own.items():
            for province, counts in parts.items():
                by_province.setdefault(province, {})[key] = counts
        for province, counts in sorted(by_province.items()):
            self.packed[province] = _pack(self._document(
                {"code": province, "name": names.get(province, "?")}, counts,
                candidates.get(province, 0)))
        if this_national:
            self.packed[NATIONAL] = _pack(
                self._document(None, this_national, None, NATIONAL))

    def _document(self, province: dict | None, counts: dict[str, Counts],
                  candidates: int | None, source: str = "snapshot") -> dict[str, Any]:
        return {"year": self.year, "province": province, "source": source,
                "candidates": candidates,
                "distributions": {key: describe(counts[key], key in SUBJECTS)
                                  for key in _order(k for k, c in counts.items() if any(c.values()))}}

    def tail(self, province: str, stored: bytes) -> bytes:
        """``,"ranks":{...}[,"previous_year":{...}]`` for a stored row of ``province``.

        The row's scores and totals are read as the text the importer wrote
        (``"toan":7.5``; the only numbers a stored body holds, see :mod:`diemthi.bodies`)
        and each is looked up as it stands: no JSON parsed. A ready standing has every
        entry written (one lookup per key); a compact one (an older year: a tenth of
        the memory) writes the province's figures per request.
        """
        scores = SCORE.findall(stored)
        nation = self.nation
        if self.ready:
            parts = list(map(self.province.get(province, _NONE).__getitem__, scores))
        else:  # as compact as can be: a bisection and a few digits written per key
            ranked, parsed = self.ranked.get(province, _NOTHING), self.parsed
            parts = []
            for f in scores:
                key, v = parsed[f]
                values, above = ranked[key]
                i = bisect_left(values, v)
                parts.append(nation[f] + PROVINCE_RANK % (
                    above[i + 1], above[i] - above[i + 1], above[0]))
        out = b',"ranks":{' + b",".join(parts) + b"}"
        if self.previous_head:
            # keys absent last year have no entry: .get gives None, which filter drops
            out += self.previous_head + b",".join(
                filter(None, map(self.equivalents.get, scores))) + b"}}"
        return out

    def stats_document(self, scope: str | None) -> dict[str, Any] | None:
        """The document of ``GET /v1/stats/{year}[/{scope}]``, a new dict each call: scope
        None (the whole snapshot), a province code, or ``"national"``; None when none."""
        body = self.stats_body(scope)
        return None if body is None else orjson.loads(body)

    def stats_body(self, scope: str | None) -> bytes | None:
        body = self.unpacked.get(scope)
        if body is None:
            packed = self.packed.get(scope)
            if packed is None:
                return None
            body = self.unpacked[scope] = zlib.decompress(packed)
        return body

    def has_stats(self, scope: str | None) -> bool:
        return scope in self.packed


def text_report(doc: dict[str, Any], width: int = 40) -> list[str]:
    """A stats document for a terminal: a line per key, then ten bins of its histogram."""
    where = doc["province"]["name"] + f" ({doc['province']['code']})" if doc["province"] \
        else ("cả nước" if doc["source"] == NATIONAL else "toàn bộ bản chụp")
    people = f", {doc['candidates']} thí sinh" if doc["candidates"] is not None else ""
    out = [f"Phổ điểm năm {doc['year']} – {where}{people}"]
    for key, d in doc["distributions"].items():
        name = SUBJECTS[key].name if key in SUBJECTS else f"Tổ hợp {key}"
        extra = (f", ≤ 1 điểm: {d['at_most_1']}, điểm 10: {d['tens']}"
                 if "tens" in d else "")
        out.append(f"{name}: {d['count']} bài, trung bình {d['mean']:.2f}, "
                   f"trung vị {d['median']:.2f}{extra}")
        top = 10 if key in SUBJECTS else 30
        step = top // 10
        bins = [0] * 10
        for value, count in d["histogram"]:
            bins[min(int(value // step), 9)] += count
        peak = max(bins) or 1
        for i, count in enumerate(bins):
            upper = "]" if i == 9 else ")"
            out.append(f"  [{i * step:>2}, {(i + 1) * step:>2}{upper} "
                       f"{'█' * round(width * count / peak):<{width}} {count}")
    return out
