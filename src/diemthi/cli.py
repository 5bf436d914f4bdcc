"""The ``diemthi`` command: a thin layer of click over the library.

Exit codes: 0 success, 1 input refused (bad rows, unknown snapshot, SBD not found),
2 usage errors (click's own).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, Iterator, NoReturn

import click
import orjson

from . import (backup as backup_mod, changes, dialects, history, importer, messages,
               national, settings as settings_mod, standing, store)
from .files import PRIVATE_UMASK, exposed_secrets
from .limits import DialectError
from .reference import SUBJECTS, provinces
from .sbd import is_sbd

SHOWN_ERRORS = 100  # on the terminal; the report file has every one


def _settings(**flags: Any) -> settings_mod.Settings:
    try:
        return settings_mod.load(flags)
    except settings_mod.SettingsError as exc:
        raise click.UsageError(str(exc)) from exc


def refuse(message: str) -> NoReturn:
    click.secho(f"Lỗi: {message}", fg="red", err=True)
    sys.exit(1)


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where snapshots live [env DIEMTHI_DATA_DIR; default ./data].")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="diemthi")
def cli() -> None:
    """diemthi: THPT exam-score lookup for provincial Zalo Official Accounts."""


def _maps(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
          ) -> tuple[str, ...]:
    """--map checked before anything is read: a malformed one is a usage error (exit 2)."""
    try:
        dialects.parse_maps(list(value))
    except DialectError as exc:
        raise click.BadParameter(str(exc), param_hint="--map") from exc
    return value


@cli.command("import")
@data_dir_option
@click.option("--year", type=click.IntRange(2000, 2100), required=True, help="Exam year.")
@click.option("--activate", is_flag=True, help="Serve this snapshot for its year.")
@click.option("--max-errors", type=click.IntRange(0), default=0, show_default=True,
              help="Build from the good rows when there are at most N bad ones.")
@click.option("--map", "maps", multiple=True, metavar="'HEADER=key'",
              callback=_maps,
              help="Map a header we do not recognise to a column key (or 'ignore').")
@click.option("--jobs", type=click.IntRange(1), default=None,
              help="Worker processes converting rows [default: CPU count, up to 4].")
@click.option("--base", default=None, metavar="SNAPSHOT",
              help="FILES are changes (after phúc khảo) to this snapshot: a new snapshot is "
                   "the base plus the changes.")
@click.option("--by", default=None, metavar="NAME",
              help="Who is importing, for the history [default: the OS user].")
@click.option("--reason", default=None, metavar="TEXT", help="Why, for the history.")
@click.option("--skip-unchanged", is_flag=True,
              help="Do nothing when the active snapshot of YEAR was built from these very "
                   "files (same names and sha256).")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
def import_command(data_dir: Path | None, year: int, activate: bool, max_errors: int,
                   maps: tuple[str, ...], jobs: int | None, base: str | None, by: str | None,
                   reason: str | None, skip_unchanged: bool, files: tuple[Path, ...]) -> None:
    """Build one snapshot of YEAR from all FILES (CSV or XLSX) together."""
    settings = _settings(data_dir=data_dir)
    try:
        with _sigterm_as_exit():
            result = _run_import(settings.data_dir, year, base, list(files), activate=activate,
                                 max_errors=max_errors, maps=maps, jobs=jobs, by=by,
                                 reason=reason, skip_unchanged=skip_unchanged)
    except importer.ImportRefused as exc:
        if exc.result is not None:
            print_summary(exc.result)
        refuse(str(exc))
        return
    if result.unchanged:
        click.echo(f"Không nhập lại: bản chụp {result.snapshot_id} đang phục vụ năm {year} "
                   "được tạo từ đúng các tệp này.")
        return
    print_summary(result)
    click.secho(f"Bản chụp: {result.snapshot_id}", fg="green", bold=True)
    click.echo(f"Tệp: {result.snapshot_path}")
    if result.activated:
        click.secho(f"Đã kích hoạt: đang phục vụ cho năm {year}.", fg="green")
    else:
        click.echo(f"Chưa kích hoạt. Kích hoạt bằng: diemthi activate --data-dir "
                   f"{settings.data_dir} {result.snapshot_id}")


def _run_import(data_dir: Path, year: int, base: str | None, files: list[Path],
                **options: Any) -> importer.ImportResult:
    if base is not None:
        options.pop("jobs"), options.pop("skip_unchanged")
        return changes.import_changes(data_dir, year, base, files, **options)
    return importer.import_files(data_dir, year, files, progress=_progress_bar, **options)


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM ends an import as Ctrl-C does: the partial snapshot is removed on the way."""
    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _progress_bar(table: Any) -> Any:
    from tqdm import tqdm  # only long imports on a terminal need it

    return tqdm(total=table.size, desc=table.path.name, unit="B", unit_scale=True,
                file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)


def print_summary(result: importer.ImportResult) -> None:
    """What staff cross-check against official totals."""
    echo = click.echo
    for f in result.files:
        echo(f"{f.name} ({f.dialect}): {f.rows} dòng, nhập {f.imported}, lỗi {f.bad_rows}")
        for sheet in f.sheets:
            echo(f"  trang {sheet.name}: {sheet.rows} dòng, nhập {sheet.imported}, "
                 f"lỗi {sheet.bad_rows}")
        for name, why in f.skipped:
            click.secho(f"  bỏ qua trang {name}: {why}", fg="yellow")
        if f.ignored:
            echo(f"  cột bỏ qua: {', '.join(f.ignored)}")
    names = provinces(result.year)
    if result.provinces:
        echo("Theo tỉnh:")
        for code, count in result.provinces.items():
            echo(f"  {code} {names.get(code, '?'):<32} {count:>9}")
    if result.subjects:
        echo(f"  {'Môn':<30} {'số bài':>9} {'trung bình':>10} {'thấp nhất':>9} "
             f"{'cao nhất':>9}")
        for key, s in result.subjects.items():
            echo(f"  {SUBJECTS[key].name:<30} {s.count:>9} {s.mean:>10.2f} {s.min:>9.2f} "
                 f"{s.max:>9.2f}")
    echo(f"Tổng: {result.imported} thí sinh.")
    for warning in result.warnings:
        if "bỏ qua trang" not in warning:  # skipped sheets are listed under their file
            click.secho(f"Cảnh báo: {warning}", fg="yellow")
    if result.errors:
        click.secho(f"{result.bad_rows} dòng lỗi:", fg="red", err=True)
        for e in result.errors[:SHOWN_ERRORS]:
            click.echo(f"  {e}", err=True)
        count = max(result.error_count, len(result.errors))
        if count > SHOWN_ERRORS:
            click.echo(f"  ... và {count - SHOWN_ERRORS} lỗi nữa trong báo cáo", err=True)
    if result.report_path:
        echo(f"Báo cáo: {result.report_path}")


@cli.command()
@data_dir_option
@click.option("--release-at", default=None, metavar="ISO-TIME|now",
              help="Publish this year from then on (no zone = Vietnam time); 'now' lifts "
                   "the embargo [default: keep the year's current release time].")
@click.option("--by", default=None, metavar="NAME",
              help="Who is activating, for the history [default: the OS user].")
@click.option("--reason", default=None, metavar="TEXT", help="Why, for the history.")
@click.argument("snapshot")
def activate(data_dir: Path | None, release_at: str | None, by: str | None,
             reason: str | None, snapshot: str) -> None:
    """Serve SNAPSHOT for its year (an older one rolls back)."""
    settings = _settings(data_dir=data_dir)
    when: Any = store.KEEP
    if release_at is not None:
        try:
            when = None if release_at.strip().lower() == "now" else \
                settings_mod.parse_release_at(release_at)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--release-at") from exc
    try:
        previous = store.active_ids(settings.data_dir)
        info = store.activate(settings.data_dir, snapshot, when)
    except store.StoreError as exc:
        refuse(str(exc))
        return
    pointer = store.read_pointer(settings.data_dir, info.year)
    same = previous.get(info.year) == info.id  # only the release time changes
    history.append(settings.data_dir, "release_at" if same and release_at else "activate",
                   year=info.year, snapshot=info.id, previous=None if same else
                   previous.get(info.year), by=by, reason=reason,
                   release_at=pointer.release_at.isoformat() if pointer.release_at
                   else ("now" if release_at else None))
    click.secho(f"Đã kích hoạt {info.id} cho năm {info.year} "
                f"({info.manifest['rows']} thí sinh).", fg="green")
    if pointer.release_at is not None:
        click.echo(f"Công bố từ {messages.when(pointer.release_at)} (giờ Việt Nam).")


@cli.command("history")
@data_dir_option
@click.option("--year", type=click.IntRange(2000, 2100), default=None,
              help="Only this exam year's events.")
@click.option("--json", "as_json", is_flag=True, help="The lines as stored (JSON).")
def history_command(data_dir: Path | None, year: int | None, as_json: bool) -> None:
    """What was imported, activated or refused, by whom, from which files, oldest first."""
    settings = _settings(data_dir=data_dir)
    found = False
    for event in history.read(settings.data_dir, year):
        found = True
        click.echo(orjson.dumps(event).decode() if as_json else history.describe(event))
    if not found:
        click.echo(f"Chưa có sự kiện nào trong {history.path(settings.data_dir)}.")


@cli.command()
@data_dir_option
@click.option("--check", is_flag=True, help="Read every page of every snapshot and say "
              "which are damaged (a copy brought from another machine); about a second "
              "per 200 MB.")
def snapshots(data_dir: Path | None, check: bool) -> None:
    """List snapshots; '*' marks the one served for its year, '!' a file that is not a
    sound snapshot (exit code 1)."""
    settings = _settings(data_dir=data_dir)
    active = store.active_ids(settings.data_dir)
    found = store.list_snapshots(settings.data_dir)
    broken = store.unreadable_snapshots(settings.data_dir)
    if not found and not broken:
        click.echo(f"Chưa có bản chụp nào trong {store.snapshots_dir(settings.data_dir)}.")
        return
    for info in found:
        mark = "*" if active.get(info.year) == info.id else " "
        m = info.manifest
        files = ", ".join(f["name"] for f in m["files"])
        note = _release_note(settings.data_dir, info) if mark == "*" else ""
        damage = store.check_snapshot(info.path) if check else None
        if damage is not None:
            broken.append(f"{info.path.name}: hỏng ({damage})")
        click.echo(f"{mark} {info.id}  năm {info.year}  {m['rows']:>9} thí sinh  "
                   f"{m['created_at']}  {files}{note}" + ("  ← HỎNG" if damage else ""))
    for why in broken:
        click.secho(f"! {why}", fg="red", err=True)
    if broken:
        refuse(f"{len(broken)} tệp trong {store.snapshots_dir(settings.data_dir)} không phải "
               "bản chụp dùng được: chép lại từ bản gốc (không kích hoạt chúng)")
    if check:
        click.echo(f"Đã kiểm tra {len(found)} bản chụp: không có lỗi.")


def _release_note(data_dir: Path, info: store.SnapshotInfo) -> str:
    try:
        at = store.read_pointer(data_dir, info.year).release_at
    except store.StoreError:
        return ""
    return f"  công bố từ {messages.when(at)}" if at else ""


SERVED_YEAR_HELP = ("Exam year [default: as the API answers without ?year=: DIEMTHI_YEAR, "
                    "else the latest year activated].")
SNAPSHOT_HELP = ("A snapshot by id, activated or not (check a phúc khảo import before "
                 "activating it), as it would be served.")


@cli.command()
@data_dir_option
@click.option("--year", type=click.IntRange(2000, 2100), default=None, help=SERVED_YEAR_HELP)
@click.option("--snapshot", "snapshot_id", default=None, metavar="ID", help=SNAPSHOT_HELP)
@click.argument("sbd")
def lookup(data_dir: Path | None, year: int | None, snapshot_id: str | None, sbd: str) -> None:
    """Print one candidate's scores as the API serves them."""
    settings = _settings(data_dir=data_dir)
    if not is_sbd(sbd):
        raise click.BadParameter("SBD phải gồm đúng 8 chữ số", param_hint="SBD")
    info, built = _served(settings, year, snapshot_id)
    body = store.lookup(info, sbd, built)
    if body is None:
        refuse(f"không tìm thấy SBD {sbd} trong năm {info.year}")
        return
    click.echo(orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode())


def _served(settings: settings_mod.Settings, year: int | None, snapshot_id: str | None = None
            ) -> tuple[store.SnapshotInfo, standing.Standing]:
    """A snapshot and its standing as the server serves (or, not activated, would serve)
    it: ``snapshot_id``'s, else the active one of ``year``, whose default is the API's
    (``DIEMTHI_YEAR``, else the latest year activated; never another year in its place)."""
    data_dir = settings.data_dir
    active = store.active_ids(data_dir)
    if snapshot_id is not None:
        if year is not None:
            raise click.UsageError("--year và --snapshot: chọn một")
        try:
            info = store.get_snapshot(data_dir, snapshot_id)
        except store.StoreError as exc:
            refuse(str(exc))
        basis = standing.bases_for(data_dir, {**active, info.year: info.id})[info.year]
        return info, standing.build(data_dir, basis)
    pointed = store.pointer_years(data_dir)
    if not pointed:
        refuse(f"chưa có bản chụp nào được kích hoạt trong {data_dir}")
    year = year or store.current_year(settings.year, pointed)
    if year not in active:
        why = "chưa có bản chụp được kích hoạt" if year not in pointed else \
            "có con trỏ kích hoạt nhưng không đọc được nó hoặc bản chụp nó chỉ tới"
        refuse(f"năm {year} {why} (xem: diemthi snapshots)")
    basis = standing.bases_for(data_dir, active)[year]
    return store.get_snapshot(data_dir, basis.snapshot), standing.build(data_dir, basis)


@cli.command()
@data_dir_option
@click.option("--year", type=click.IntRange(2000, 2100), default=None, help=SERVED_YEAR_HELP)
@click.option("--snapshot", "snapshot_id", default=None, metavar="ID", help=SNAPSHOT_HELP)
@click.option("--province", default=None, metavar="CC", help="One province (2-digit code).")
@click.option("--national", "whole_country", is_flag=True,
              help="The imported national distribution instead of the snapshot.")
@click.option("--json", "as_json", is_flag=True, help="The document of GET /v1/stats/....")
def stats(data_dir: Path | None, year: int | None, snapshot_id: str | None,
          province: str | None, whole_country: bool, as_json: bool) -> None:
    """Phổ điểm of the served snapshot (or a province, or the nation), to cross-check."""
    settings = _settings(data_dir=data_dir)
    if province and whole_country:
        raise click.UsageError("--province và --national: chọn một")
    info, built = _served(settings, year, snapshot_id)
    scope = standing.NATIONAL if whole_country else province
    doc = built.stats_document(scope)
    if doc is None:
        refuse(f"năm {info.year} chưa có phổ điểm cả nước (diemthi import-distribution)"
               if whole_country else f"không có thí sinh nào của tỉnh mã {province} "
               f"trong năm {info.year}")
        return
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    for line in standing.text_report(doc):
        click.echo(line)


@cli.command("import-distribution")
@data_dir_option
@click.option("--year", type=click.IntRange(2000, 2100), default=None,
              help="The exam year of FILE (with --bundled: only this year).")
@click.option("--bundled", is_flag=True, help="The distributions shipped with diemthi "
              f"({national.BUNDLED_NAME}).")
@click.option("--remove", is_flag=True, help="Take the distribution of --year away.")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def import_distribution(data_dir: Path | None, year: int | None, bundled: bool, remove: bool,
                        file: Path | None) -> None:
    """Store the national phổ điểm of a year (columns year,subject,score,count)."""
    settings = _settings(data_dir=data_dir)
    if sum((bundled, remove, file is not None)) != 1:
        raise click.UsageError("cần đúng một trong: FILE, --bundled, --remove")
    if (remove or file is not None) and year is None:
        raise click.UsageError("cần --year")
    if remove:
        if national.remove(settings.data_dir, year):  # type: ignore[arg-type]
            click.secho(f"Đã gỡ phổ điểm cả nước năm {year}.", fg="green")
        else:
            click.echo(f"Năm {year} không có phổ điểm cả nước nào để gỡ.")
        return
    try:
        stored = (national.import_bundled(settings.data_dir, year) if bundled else
                  {year: national.import_file(settings.data_dir, year, file)})  # type: ignore
    except national.DistributionRefused as exc:
        refuse(str(exc))
        return
    for y, distribution in sorted(stored.items()):
        counts = ", ".join(f"{key} {sum(c.values())}" for key, c in distribution.items())
        click.echo(f"{y}: {counts}")
    click.secho(f"Đã lưu phổ điểm cả nước: {len(stored)} năm.", fg="green")


def _serve_options(command: Any) -> Any:
    """``serve``'s flags: one per setting of the service (the chatbot's: DIEMTHI_* only)."""
    command = click.option("--access-log/--no-access-log", default=None,
                           help="Log every request [env DIEMTHI_ACCESS_LOG; off].")(command)
    for name, kind, meta, text in reversed([
        ("host", str, "ADDR", "Address to listen on [env DIEMTHI_HOST; 127.0.0.1]."),
        ("port", int, "N", "Port [env DIEMTHI_PORT; 8000]."),
        ("workers", click.IntRange(1), "N", "uvicorn worker processes [env DIEMTHI_WORKERS; 1]."),
        ("year", click.IntRange(2000, 2100), "YYYY", "Exam year answered without ?year= "
         "[env DIEMTHI_YEAR; the latest year with an active snapshot]."),
        ("release-at", str, "ISO-TIME", "Embargo for every year: 'not yet published' until "
         "then, overriding each year's own release time [env DIEMTHI_RELEASE_AT]."),
        ("rate-limit", float, "PER-S", "Requests per second per client, 0 = off "
         "[env DIEMTHI_RATE_LIMIT; 0]."),
        ("rate-burst", click.IntRange(1), "N", "Burst per client [env DIEMTHI_RATE_BURST; 20]."),
        ("trusted-proxies", str, "NETS", "Comma-separated networks whose X-Forwarded-For is "
         "believed [env DIEMTHI_TRUSTED_PROXIES; none]."),
        ("metrics-allow", str, "NETS", "Comma-separated networks that may read /metrics "
         "[env DIEMTHI_METRICS_ALLOW; loopback only]."),
        ("cors-origins", str, "ORIGINS", "Comma-separated origins that may call the read-only "
         "API from a browser (a Zalo Mini App) [env DIEMTHI_CORS_ORIGINS; none]."),
        ("public-url", str, "URL", "Public base URL of the pages, for absolute links "
         "[env DIEMTHI_PUBLIC_URL; none]."),
        ("max-header-bytes", click.IntRange(1), "N", "Request line and headers, at most; "
         "beyond: 431 [env DIEMTHI_MAX_HEADER_BYTES; 16384]."),
        ("header-timeout", str, "DURATION", "Time to receive a request's headers; beyond: "
         "408 and closed [env DIEMTHI_HEADER_TIMEOUT; 10s]."),
        ("max-connections", click.IntRange(1), "N", "Open connections per worker; beyond: "
         "503 and closed [env DIEMTHI_MAX_CONNECTIONS; 1000]."),
        ("reload-interval", str, "DURATION", "How often to check the activation pointers "
         "[env DIEMTHI_RELOAD_INTERVAL; 2s]."),
        ("cache-size", click.IntRange(0), "N", "Responses cached, all years together "
         "[env DIEMTHI_CACHE_SIZE; 60000]."),
        ("negative-cache-size", click.IntRange(0), "N", "Unknown SBDs remembered, all years "
         "together [env DIEMTHI_NEGATIVE_CACHE_SIZE; 50000]."),
        ("page-cache-size", click.IntRange(0), "N", "Result pages kept per snapshot, as "
         "bytes [env DIEMTHI_PAGE_CACHE_SIZE; 5000]."),
        ("batch-size", click.IntRange(1), "N", "Cache misses per SQLite read, at most "
         "[env DIEMTHI_BATCH_SIZE; 256]."),
        ("max-age", str, "DURATION", "Cache-Control max-age of answers, whole seconds "
         "[env DIEMTHI_MAX_AGE; 300s]."),
    ]):
        command = click.option(f"--{name}", type=kind, default=None, metavar=meta,
                               help=text)(command)
    return command


@cli.command()
@data_dir_option
@_serve_options
def serve(data_dir: Path | None, **flags: Any) -> None:
    """Serve the active snapshots over HTTP.

    Every flag has a DIEMTHI_* variable; the chatbot's settings are variables only
    (see README).
    """
    from . import server  # uvicorn and its world: not loaded by the other commands

    flags = {"data_dir": data_dir, **flags}
    settings = _settings(**flags)
    for path in exposed_secrets(settings.data_dir):
        click.secho(f"Cảnh báo: {path} chứa bí mật nhưng người dùng khác đọc được; "
                    f"chạy: chmod 600 {path}", fg="yellow", err=True)
    if settings.zalo_enabled:  # a bad answers file stops the start here, with its reason
        from .chatbot import answers

        try:
            answers.load(settings.chatbot_answers)
        except answers.AnswersError as exc:
            raise click.UsageError(str(exc)) from exc
    if settings.workers == 1:
        from .app import create_app

        server.run(server.config(settings, create_app(settings)))
        return
    # Worker processes build their own app from the environment: pass the flags on.
    for name, value in flags.items():
        if value is not None:
            os.environ[settings_mod.PREFIX + name.upper()] = str(value)
    # One /metrics for all workers: a private directory, empty at start, where they share
    # their figures (prometheus_client reads PROMETHEUS_MULTIPROC_DIR when imported).
    import shutil
    import tempfile

    shared = tempfile.mkdtemp(prefix="diemthi-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
    os.environ[settings_mod.PREFIX + "METRICS_DIR"] = shared
    try:
        server.run(server.config(settings, "diemthi.app:app_from_environment", factory=True))
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@cli.command("backup")
@data_dir_option
@click.option("--with-secrets", is_flag=True, help="Also copy the Zalo tokens file.")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
def backup_command(data_dir: Path | None, with_secrets: bool, dest: Path) -> None:
    """Copy the data dir into DEST, consistent while the server runs."""
    settings = _settings(data_dir=data_dir)
    try:
        report = backup_mod.backup(settings.data_dir, dest, with_secrets=with_secrets)
    except backup_mod.BackupError as exc:
        refuse(str(exc))
    click.echo(f"Đã sao lưu {len(report.files)} tệp vào {dest} ({report.linked} liên kết cứng, "
               f"{report.copied} bản sao, {report.online} CSDL sao lưu trực tuyến); "
               "đã kiểm tra sha256.")
    for rel in report.skipped_secrets:
        click.echo(f"Bỏ qua {rel} (bí mật; thêm --with-secrets để sao lưu).")


@cli.command("restore")
@click.argument("src", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
def restore_command(src: Path, data_dir: Path) -> None:
    """Restore a backup SRC into a new or empty DATA_DIR (every file checked first)."""
    try:
        report = backup_mod.restore(src, data_dir)
    except backup_mod.BackupError as exc:
        refuse(str(exc))
    click.echo(f"Đã khôi phục {len(report.files)} tệp vào {data_dir}.")


@cli.group()
def zalo() -> None:
    """The Zalo OA chatbot's outbox (for ops on results day)."""


@zalo.command("status")
@data_dir_option
def zalo_status(data_dir: Path | None) -> None:
    """Queue, sends by channel and quota, registrations and the release push."""
    from .chatbot.outbox import read_stats

    settings = _settings(data_dir=data_dir)
    stats = read_stats(settings.data_dir)
    if stats is None:
        refuse(f"chưa có hộp thư chatbot trong {settings.data_dir}")
        return
    for line in status_lines(stats):
        click.echo(line)


@zalo.command("check")
@data_dir_option
def zalo_check(data_dir: Path | None) -> None:
    """Will the OA work on results day? Calls Zalo, refreshes if due, shows token ages."""
    import asyncio

    from .chatbot import tokencare

    settings = _settings(data_dir=data_dir)
    result = asyncio.run(tokencare.check(settings))
    if result.oa_name is not None:
        click.echo(f"OA: {result.oa_name}")
    for label, age in (("Access token", result.access_age),
                       ("Refresh token", result.refresh_age)):
        if age is not None:
            click.echo(f"{label}: {age / 3600:.1f} giờ tuổi ({age / 86400:.1f} ngày)")
    if result.refreshed:
        click.echo("Đã làm mới access token.")
    for problem in result.problems:
        click.secho(f"Lỗi: {problem}", fg="red", err=True)
    if not result.ok:
        sys.exit(1)
    click.echo("Sẵn sàng cho ngày công bố điểm.")


def status_lines(s: dict[str, Any]) -> list[str]:
    """``diemthi zalo status`` as lines of a plain table."""
    rows = [("queue depth (waiting)", s["depth"]),
            ("oldest waiting, seconds", f"{s['oldest_seconds']:.1f}"),
            ("sent per second, last minute", f"{s['send_rate']:.2f}"),
            ("retried (attempts)", s["retried"]),
            ("registered", s["registered"]), ("pushed", s["pushed"]),
            ("push waiting", s["push_waiting"])]
    rows += [(f"sent {channel} / {quota}", n) for (channel, quota), n in sorted(s["sent"].items())]
    rows += [(f"given up: {reason}", n) for reason, n in sorted(s["given_up"].items())]
    rows.append(("charged so far", s["charged"]))
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  {value:>10}" for name, value in rows]


@cli.command("diff")
@data_dir_option
@click.argument("old_id")
@click.argument("new_id")
def diff_command(data_dir: Path | None, old_id: str, new_id: str) -> None:
    """CSV of the scores that changed from OLD_ID to NEW_ID (sbd,subject,old,new)."""
    from . import diff

    settings = _settings(data_dir=data_dir)
    try:
        old, new = (store.get_snapshot(settings.data_dir, i) for i in (old_id, new_id))
    except store.StoreError as exc:
        refuse(str(exc))
        return
    if old.year != new.year:
        refuse(f"hai bản chụp khác năm ({old.year}, {new.year})")
    diff.write_csv(diff.changes(old, new), sys.stdout)


def main() -> None:
    os.umask(PRIVATE_UMASK)  # nothing we create is readable by other local users
    cli()
