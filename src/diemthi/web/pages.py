"""The pages: home with the lookup form, the result page, phổ điểm, and their error pages.

Follow one request: ``/tra-cuu/{sbd}`` → :meth:`Pages.result` (raw ASGI, as the API's
endpoint) → the page LRU of this snapshot (finished HTML bytes) → on a miss, the same
:meth:`Served.get <diemthi.lookup.Served.get>` the API calls, its JSON parsed and put into
the page (:meth:`Pages.result_page`). The page shows exactly what the API says, and is
cached, ETagged and answered 304 by the same rules, so an edge can absorb it as it
absorbs the JSON.

Templates are plain Jinja2 rendered to bytes (not Starlette ``TemplateResponse``), because
what is cached is the finished body, not a response object; the result page's templates
are rendered once into :class:`~diemthi.web.shell.Shell` s and filled per candidate.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, quote

import orjson
from cachetools import LRUCache
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.routing import BaseRoute, Route

from .. import messages
from ..formats import score, thousands, top_percent
from ..gate import snapshot_for
from ..lookup import Lookup, Served
from ..reference import COMBINATIONS, LANGUAGES, SUBJECTS, provinces
from ..responses import etag_matches
from ..sbd import is_sbd
from ..standing import NATIONAL
from ..settings import Settings
from .assets import Assets
from .charts import Histogram
from .shell import Shell, marker

HERE = Path(__file__).resolve().parent
HTML = b"text/html; charset=utf-8"
SITE_NAME = "Tra cứu điểm thi THPT"
# Nothing but our own files: no inline script or style, no other origin, no framing.
CSP = (b"default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
       b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY = [(b"content-security-policy", CSP), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin")]
NO_STORE = (b"cache-control", b"no-store")
VARY = (b"vary", b"accept-encoding")
Answer = tuple[int, list, bytes]


def subject_name(key: str) -> str:
    return SUBJECTS[key].name if key in SUBJECTS else key


def show(value: Any) -> str:
    """A score as Vietnamese write it; anything else (a status such as 'Vắng') as given."""
    return score(value) if isinstance(value, (int, float)) else str(value)


def rank_lines(rank: dict | None) -> list[str]:
    """'hạng 1.204 / 26.880 trong tỉnh', 'top 4,5% cả nước' from a ``ranks`` entry.

    The nation's line only when it says more than the province's: counted in the ministry's
    national figures, or over more candidates than the province has (as the chatbot does)."""
    if not rank:
        return []
    lines = []
    province = rank.get("province") or {}
    if province.get("of"):
        lines.append(f"hạng {thousands(province['higher'] + 1)} / "
                     f"{thousands(province['of'])} trong tỉnh")
    nation = rank.get("nation") or {}
    if nation.get("of") and (nation.get("source") == NATIONAL
                             or nation["of"] > province.get("of", 0)):
        lines.append(f"{top_percent(nation)} cả nước")
    return lines


def year_of(query: dict[str, list[str]]) -> tuple[bool, int | None]:
    """(ok, year) from ``?year=``: absent or empty is (True, None)."""
    text = (query.get("year") or [""])[-1]
    if not text:
        return True, None
    if len(text) != 4 or not text.isascii() or not text.isdigit():
        return False, None
    return True, int(text)


class Endpoint:
    """A raw ASGI app around ``answer(scope) -> (status, headers, body)``: no Request or
    Response objects on the way (a class instance, so Starlette's Route passes it ASGI)."""

    def __init__(self, answer: Callable[[dict], Awaitable[Answer]]):
        self.answer = answer

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        status, headers, body = await self.answer(scope)
        headers = [*headers, *SECURITY, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body})


class Pages:
    """Every HTML route, over the app's lookup; ``routes()`` is what ``app.py`` mounts."""

    def __init__(self, settings: Settings, lookup: Lookup):
        self.lookup = lookup
        self.cache_control = (b"cache-control", f"public, max-age={settings.max_age}".encode())
        self.page_cache_size = settings.page_cache_size
        self.assets = Assets(HERE / "static")
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True, auto_reload=False)
        self.env.globals.update(asset=self.assets.url, site_name=SITE_NAME,
                                public_url=settings.public_url.rstrip("/"))
        self.rendered: dict[bytes, Rendered] = {}  # by served basis (its ETag prefix)
        self.shells: dict[tuple, Shell] = {}  # templates rendered once, with markers

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/tra-cuu/{sbd}", Endpoint(self.result), methods=["GET", "HEAD"]),  # the hot one
            Route("/", Endpoint(self.home), methods=["GET", "HEAD"]),
            Route("/tra-cuu", Endpoint(self.search), methods=["GET", "HEAD"]),
            Route("/pho-diem", Endpoint(self.pho_diem), methods=["GET", "HEAD"]),
            Route("/static/{name}", self.assets, methods=["GET", "HEAD"]),
        ]

    # -- rendering ---------------------------------------------------------------------

    def context(self, path: str, **context: Any) -> dict[str, Any]:
        context.setdefault("description", "Tra cứu điểm thi tốt nghiệp THPT theo số báo danh: "
                           "điểm từng môn, tổ hợp xét tuyển, thứ hạng và phổ điểm.")
        years = sorted(self.lookup.served, reverse=True)
        context.setdefault("years", years)
        context.setdefault("year", years[0] if years else None)
        return {"path": path, **context}

    def render(self, template: str, path: str, **context: Any) -> bytes:
        return self.env.get_template(template).render(self.context(path, **context)).encode()

    def page(self, status: int, template: str, path: str, headers: list | None = None,
             **context: Any) -> Answer:
        return (status, [(b"content-type", HTML), *(headers or [])],
                self.render(template, path, **context))

    def error(self, status: int, path: str, heading: str, message: str,
              headers: list | None = None, **context: Any) -> Answer:
        context.setdefault("title", f"{heading} – {SITE_NAME}")
        return self.page(status, "error.html", path, headers, heading=heading, message=message,
                         noindex=True, **context)

    def invalid_sbd(self, path: str, text: str) -> Answer:
        return self.error(400, path, "Số báo danh không hợp lệ", messages.INVALID_SBD,
                          show_form=True, sbd_value=text[:32])

    def gate(self, path: str, year: int | None) -> tuple[Served | None, Answer | None]:
        """The API's answer for the year (:func:`diemthi.gate.snapshot_for`), as a page."""
        if year is None:
            year = self.lookup.current_year
            if year is None:
                return None, self.error(503, path, "Hệ thống đang nạp dữ liệu",
                                        messages.NOT_READY,
                                        [(b"retry-after", b"10"), NO_STORE], tone="wait")
        found = snapshot_for(self.lookup, year)
        if isinstance(found, Served):
            return found, None
        status, headers, _ = found
        kept = [h for h in headers if h[0] != b"content-type"]
        if status == 403:
            release = self.lookup.release(year)
            assert release.at is not None
            return None, self.error(
                403, path, "Điểm thi chưa được công bố", messages.not_published(release.at),
                [*[h for h in kept if h[0] != b"cache-control"], NO_STORE],
                tone="wait", release_iso=release.at.isoformat(),
                release_text=messages.when(release.at))
        if status == 404:
            return None, self.error(404, path, "Chưa có điểm thi năm này",
                                    messages.year_not_found(year))
        return None, self.error(status, path, "Hệ thống đang nạp dữ liệu", messages.NOT_READY,
                                [*kept, NO_STORE], tone="wait")

    # -- routes ------------------------------------------------------------------------

    async def home(self, scope: dict) -> Answer:
        year = self.lookup.current_year
        release = self.lookup.release(year) if year is not None else None
        waiting = release is not None and release.at is not None and not release.published()
        return self.page(200, "home.html", "/", [self.cache_control],
                         title=f"{SITE_NAME} – tra cứu theo số báo danh",
                         release_iso=release.at.isoformat() if waiting else None,  # type: ignore
                         release_text=messages.when(release.at) if waiting else None)  # type: ignore

    async def search(self, scope: dict) -> Answer:
        """``/tra-cuu?sbd=&year=`` (the form) → 303 to the page's one address."""
        query = parse_qs(scope["query_string"].decode("latin-1"))
        text = "".join((query.get("sbd") or [""])[-1].split())  # "0100 0123" is meant whole
        ok, year = year_of(query)
        if not ok:
            return self.error(400, "/tra-cuu", "Năm thi không hợp lệ", messages.INVALID_YEAR,
                              show_form=True, sbd_value=text[:32])
        if not is_sbd(text):
            return self.invalid_sbd("/tra-cuu", text)
        location = f"/tra-cuu/{text}" + (f"?year={year}" if year else "")
        return 303, [(b"location", location.encode()), (b"content-type", HTML),
                     self.cache_control], b""

    async def result(self, scope: dict) -> Answer:
        sbd = scope["path_params"]["sbd"]
        path = "/tra-cuu/" + quote(sbd)
        if not is_sbd(sbd):
            return self.invalid_sbd(path, sbd)
        year = None
        if scope["query_string"]:
            ok, year = year_of(parse_qs(scope["query_string"].decode("latin-1")))
            if not ok:
                return self.error(400, path, "Năm thi không hợp lệ", messages.INVALID_YEAR,
                                  show_form=True, sbd_value=sbd)
        served, refused = self.gate(path, year)
        if refused:
            return refused
        assert served is not None
        condition, gzip_ok = None, False
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                condition = value
            elif name == b"accept-encoding" and b"gzip" in value:
                gzip_ok = True
        tag = served.etag_prefix + sbd.encode() + b".html"  # + '"' plain, '.gz"' gzipped
        headers = [(b"etag", tag + b'"'), self.cache_control, VARY]
        if condition is not None and (etag_matches(condition, tag + b'"')
                                      or etag_matches(condition, tag + b'.gz"')):
            return 304, headers, b""  # either representation is still good
        kept = self.rendered.get(served.etag_prefix) or self.keep(served)
        page = kept.pages.get(sbd)
        if page is None:
            found = await served.get(sbd)
            if found is None:
                return self.error(404, path, "Không tìm thấy số báo danh",
                                  messages.not_found(sbd, served.envelope.year),
                                  headers, show_form=True, sbd_value=sbd)
            page = Page(self.result_page(kept, found))
            if self.page_cache_size:
                kept.pages[sbd] = page
        elif gzip_ok:
            # A page asked for again is compressed once and sent compressed from then on;
            # the first answer is sent as rendered (compressing costs about as much).
            if page.gz is None:
                page.gz = gzip.compress(page.raw, 6, mtime=0)
            headers[0] = (b"etag", tag + b'.gz"')
            headers += [(b"content-type", HTML), (b"content-encoding", b"gzip")]
            return 200, headers, page.gz
        headers.append((b"content-type", HTML))
        return 200, headers, page.raw

    def keep(self, served: Served) -> "Rendered":
        """The caches of a served basis seen for the first time; drop those of bases no
        longer served (a new snapshot, or new figures of last year, start afresh)."""
        live = {s.etag_prefix for s in self.lookup.served.values()}
        for old in [k for k in self.rendered if k not in live]:
            del self.rendered[old]
        kept = Rendered(served, self.page_cache_size)
        self.rendered[served.etag_prefix] = kept
        return kept

    def result_page(self, kept: "Rendered", body: bytes) -> bytes:
        """A candidate's page: the year's :class:`Shell` filled with the candidate's values.

        A subject's or combination's HTML (score, rank lines, last year's equivalent,
        chart) is the same for every candidate with the same figures: it is built once (a
        shell of its own, filled) and kept under exactly those figures."""
        doc = orjson.loads(body)
        ranks = doc.get("ranks") or {}
        previous = doc.get("previous_year") or {}
        last_year = previous.get("year")
        equivalents = previous.get("equivalents") or {}
        language = (doc.get("foreign_language") or {}).get("name")
        fragments = kept.fragments
        parts = []
        for key, value in doc["scores"].items():
            rank, equivalent = ranks.get(key), equivalents.get(key)
            figures = (key, value, language if key == "ngoai_ngu" else None, _flat(rank),
                       equivalent)
            html = fragments.get(figures)
            if html is None:
                html = fragments[figures] = self.subject_html(
                    kept, key, value, language, rank, before(last_year, equivalent))
            parts.append(html)
        subjects = "".join(parts)
        parts = []
        for code, total in (doc.get("combinations") or {}).items():
            rank, equivalent = ranks.get(code), equivalents.get(code)
            figures = (code, total, None, _flat(rank), equivalent)
            html = fragments.get(figures)
            if html is None:
                html = fragments[figures] = self.combination_html(
                    code, total, rank, before(last_year, equivalent))
            parts.append(html)
        combinations = "".join(parts)
        shell = self.result_shell(doc["year"], bool(language), bool(combinations))
        return shell.fill({"sbd": escape(doc["sbd"]), "province": escape(doc["province"]["name"]),
                           "language": escape(language or ""), "subjects": subjects,
                           "combinations": combinations}).encode()

    def piece(self, template: str, variant: tuple, markers: Callable[[], dict]) -> Shell:
        """The shell of a partial template for one variant of its optional parts."""
        found = self.shells.get((template, variant))
        if found is None:
            found = self.shells[(template, variant)] = Shell(self.env.get_template(template),
                                                            markers())
        return found

    def subject_html(self, kept: "Rendered", key: str, value: Any, language: str | None,
                     rank: dict | None, previous: str | None) -> str:
        """One subject: name, score, rank lines, last year's equivalent, its chart."""
        name = subject_name(key)
        if key == "ngoai_ngu" and language:
            name = f"{name} ({language})"
        lines = rank_lines(rank)
        values = {"name": escape(name), "score": escape(show(value)),
                  "previous": escape(previous or "")}
        values.update((f"rank{i}", escape(line)) for i, line in enumerate(lines))
        scope, dist = kept.distribution(key)
        chart = bool(dist and dist.get("histogram") and isinstance(value, (int, float)))
        if chart:
            among = "cả nước" if scope == NATIONAL else kept.where
            values["chart"] = kept.chart(scope, key, dist).svg(
                f"Phổ điểm môn {name} {among}: {thousands(dist['count'])} thí sinh; điểm "
                f"của bạn {score(value)}", value)
            values["caption"] = escape(
                f"Phổ điểm {name} {among}: {thousands(dist['count'])} thí sinh, trung bình "
                f"{score(dist['mean'])}; cột màu cam là điểm của bạn.")
        return self.piece("_subject.html", (len(lines), bool(previous), chart), lambda: {"s": {
            "name": marker("name"), "score": marker("score"),
            "ranks": [marker(f"rank{i}") for i in range(len(lines))],
            "previous": marker("previous") if previous else None,
            "chart": marker("chart") if chart else None, "caption": marker("caption")}}
        ).fill(values)

    def combination_html(self, code: str, total: Any, rank: dict | None,
                         previous: str | None) -> str:
        """One table row: code, subjects, total, rank lines, last year's equivalent."""
        lines = rank_lines(rank)
        values = {"code": escape(code), "subjects": escape(combination_names(code)),
                  "total": escape(show(total)), "previous": escape(previous or "")}
        values.update((f"rank{i}", escape(line)) for i, line in enumerate(lines))
        return self.piece("_combination.html", (len(lines), bool(previous)), lambda: {"c": {
            "code": marker("code"), "subjects": marker("subjects"), "total": marker("total"),
            "ranks": [marker(f"rank{i}") for i in range(len(lines))],
            "previous": marker("previous") if previous else None}}).fill(values)

    def result_shell(self, year: int, language: bool, combinations: bool) -> Shell:
        """result.html rendered once per year shown and per optional part present."""
        years = tuple(sorted(self.lookup.served, reverse=True))
        key = (year, language, combinations, years)
        found = self.shells.get(key)
        if found is None:
            sbd, province = marker("sbd"), marker("province")
            title = Markup(f"Điểm thi THPT {year} – SBD {sbd}")
            found = self.shells[key] = Shell(self.env.get_template("result.html"), self.context(
                Markup("/tra-cuu/") + sbd, title=title, og_title=title, noindex=True,
                description=Markup(f"Điểm thi tốt nghiệp THPT năm {year} của số báo danh "
                                   f"{sbd} ({province})."),
                sbd=sbd, sbd_value="", year=year, province=province,
                language=marker("language") if language else None,
                subjects=[marker("subjects")],
                combinations=[marker("combinations")] if combinations else []))
        return found

    async def pho_diem(self, scope: dict) -> Answer:
        """``/pho-diem[?year=&province=]``: every distribution of a scope, with a selector."""
        path = "/pho-diem"
        query = parse_qs(scope["query_string"].decode("latin-1"))
        ok, year = year_of(query)
        if not ok:
            return self.error(400, path, "Năm thi không hợp lệ", messages.INVALID_YEAR)
        wanted = (query.get("province") or [""])[-1] or None
        if wanted is not None and wanted != NATIONAL and not (
                len(wanted) == 2 and wanted.isascii() and wanted.isdigit()):
            return self.error(400, path, "Tỉnh, thành phố không hợp lệ",
                              "Mã tỉnh, thành phố gồm 2 chữ số, ví dụ 01.")
        served, refused = self.gate(path, year)
        if refused:
            return refused
        assert served is not None
        etag = served.etag_prefix + b"pho-diem-" + (wanted or "all").encode() + b'"'
        headers = [(b"etag", etag), self.cache_control]
        for name, value in scope["headers"]:
            if name == b"if-none-match" and (value.strip() == b"*" or etag in value):
                return 304, headers, b""
        kept = self.rendered.get(served.etag_prefix) or self.keep(served)
        body = kept.stats_pages.get(wanted or "")
        if body is None:
            context = self.pho_diem_context(kept, wanted)
            if context is None:
                return self.error(404, path, "Không có phổ điểm",
                                  "Không có thí sinh của tỉnh, thành phố này trong dữ liệu.",
                                  headers)
            body = self.render("pho_diem.html", path, **context)
            kept.stats_pages[wanted or ""] = body
        headers.append((b"content-type", HTML))
        return 200, headers, body

    def scopes(self, kept: "Rendered") -> list[tuple[str, str]]:
        """The selector's choices: everyone, the nation's published figures, each province."""
        served = kept.served
        choices = [("", f"Tất cả thí sinh ({kept.where})")]
        if served.has_stats(NATIONAL):
            choices.append((NATIONAL, "Cả nước (số liệu Bộ GD&ĐT)"))
        for code, name in provinces(served.envelope.year).items():
            if served.has_stats(code):
                choices.append((code, name))
        return choices

    def pho_diem_context(self, kept: "Rendered", wanted: str | None) -> dict | None:
        year = kept.served.envelope.year
        stats = stats_document(kept.served, wanted)
        scopes = self.scopes(kept)
        labels = dict(scopes)
        if wanted is not None and wanted not in labels:
            return None
        groups = []
        distributions = (stats or {}).get("distributions") or {}
        for title, keys in (("Từng môn", [k for k in distributions if k not in COMBINATIONS]),
                            ("Tổ hợp xét tuyển", [k for k in distributions if k in COMBINATIONS])):
            items = []
            for key in keys:
                d = distributions[key]
                if not d.get("count"):
                    continue
                name = subject_name(key) if key not in COMBINATIONS else (
                    f"{key}: " + ", ".join(subject_name(k) for k in COMBINATIONS[key].subjects))
                extremes = (f"điểm ≤ 1: {thousands(d['at_most_1'])} · điểm 10: "
                            f"{thousands(d['tens'])}") if "at_most_1" in d else ""
                items.append({"name": name, "count": thousands(d["count"]), "extremes": extremes,
                              "mean": score(d["mean"]), "median": score(d["median"]),
                              "chart": kept.chart(wanted, key, d).svg(
                                  f"Phổ điểm {name}: {thousands(d['count'])} thí sinh, "
                                  f"trung bình {score(d['mean'])}, "
                                  f"trung vị {score(d['median'])}")})
            if items:
                groups.append({"title": title, "entries": items})
        label = labels.get(wanted or "", "")
        return {"title": f"Phổ điểm {year} – {label} – {SITE_NAME}", "year": year,
                "scopes": scopes, "scope_value": wanted or "", "scope_label": label,
                "candidates": thousands(stats["candidates"]) if stats and stats.get("candidates")
                else None,  # the nation's figures count per subject only
                "distributions": groups}


class Page:
    """A finished result page, and once it was asked for again, the same gzipped."""

    __slots__ = ("raw", "gz")

    def __init__(self, raw: bytes):
        self.raw = raw
        self.gz: bytes | None = None


class Rendered:
    """What one served basis renders once and keeps: finished result pages, fragments of
    them, phổ điểm pages, binned charts. A new basis gets a new one; nothing is shared."""

    FRAGMENTS = 40_000  # subjects (~1.2 KB with the chart) and combination rows (~0.3 KB)

    def __init__(self, served: Served, page_cache_size: int):
        self.served = served
        self.pages: LRUCache = LRUCache(maxsize=max(page_cache_size, 1))
        self.fragments: LRUCache = LRUCache(maxsize=self.FRAGMENTS)
        self.stats_pages: dict[str, bytes] = {}
        self.charts: dict[tuple[str | None, str], Histogram] = {}
        self.national = (stats_document(served, NATIONAL) or {}).get("distributions") or {}
        self.own = (stats_document(served, None) or {}).get("distributions") or {}
        present = [name for code, name in provinces(served.envelope.year).items()
                   if served.has_stats(code)]
        #: how the whole snapshot is called: 'cả nước', or its one province's name
        self.where = present[0] if len(present) == 1 else "cả nước"

    def distribution(self, key: str) -> tuple[str | None, dict | None]:
        """The chart a result page shows for ``key``: the nation's published figures when
        imported, else the whole snapshot's."""
        if key in self.national:
            return NATIONAL, self.national[key]
        return None, self.own.get(key)

    def chart(self, scope: str | None, key: str, dist: dict) -> Histogram:
        found = self.charts.get((scope, key))
        if found is None:
            found = Histogram(dist["histogram"], top=30 if key in COMBINATIONS else 10)
            self.charts[(scope, key)] = found
        return found


def _flat(rank: dict | None) -> tuple:
    """A rank entry as a hashable key: the figures its lines are drawn from."""
    if not rank:
        return ()
    p, n = rank.get("province") or {}, rank.get("nation") or {}
    return (p.get("higher"), p.get("of"), n.get("higher"), n.get("of"), n.get("source"))


def before(last_year: int | None, equivalent: float | None) -> str | None:
    """'năm 2025 tương đương 23,75 điểm', when last year's equivalent is known."""
    if equivalent is None or last_year is None:
        return None
    return f"năm {last_year} tương đương {score(equivalent)} điểm"


def combination_names(code: str) -> str:
    """'Toán, Ngữ văn, Tiếng Pháp' (D03 names its language)."""
    combo = COMBINATIONS.get(code)
    if combo is None:
        return ""
    names = ", ".join(subject_name(k) for k in combo.subjects)
    if combo.language and combo.language != "N1":
        names = names.replace(subject_name("ngoai_ngu"),
                              LANGUAGES.get(combo.language, combo.language))
    return names


def stats_document(served: Served, scope: str | None) -> dict | None:
    """The phổ điểm document of a scope (None: everyone; a province code; 'national'), as
    ``GET /v1/stats`` answers it; None where the snapshot has none."""
    return served.stats_document(scope)
