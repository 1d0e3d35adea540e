"""Relatórios: the month's recovery report and the forecast, as tables, charts and CSV.

The numbers are `notifier report`'s (reports/monthly.py `month_report`) and `notifier forecast`'s
(reports/forecast.py `store_forecast`, kept per version of the state: `Web.forecast`), and the CSV downloads are written by the same functions as
their `--format csv` (reports/exports.py). What this module adds is the charts' geometry: plain
numbers (percentages of the chart's width, pixels of its height) that the template draws as SVG,
no script. Widths are percentages and the text is not scaled, so a chart stays readable on a
390 px phone: bars shrink, labels do not.
"""
from __future__ import annotations

import io
import os
import re
import threading
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from babel.dates import format_date
from fastapi import Depends, Request
from fastapi.responses import Response

from notifier.reports.exports import CHANNEL_LABELS, STAGE_LABELS, write_forecast_csv, write_report_csv
from notifier.reports.monthly import (WINDOW_DAYS, Report, attempts_unchanged, month_attempts, month_bounds,
                                      report_of, tally)
from notifier.state.archivefile import archive_path_for

from .. import auth
from . import error_page, page

FORECAST_DAYS = 30  # as `notifier forecast` by default
# Every attempt is in exactly one of these (monthly.OUTCOMES and `other`): the segments of its bar.
OUTCOMES = (("sent", "Enviadas"), ("failed", "Falhas"), ("blocked", "Bloqueadas"), ("task", "Tarefas da equipe"),
            ("other", "Outras"))
CHANNEL_ORDER = ("email", "whatsapp", "sms", "social", "staff")
CHART_HEIGHT = 160  # px of the forecast's bars


@dataclass
class Segment:
    kind: str  # a CSS class: the series' colour
    label: str
    value: int
    x: float = 0.0  # % of the chart's width
    width: float = 0.0


@dataclass
class Bar:
    label: str
    total: object
    segments: list[Segment] = field(default_factory=list)
    note: str = ""


def _month(mes: str, today: date) -> str:
    """`mes` (YYYY-MM) as given, today's month when empty; a 400 naming the field otherwise."""
    if not mes.strip():
        return f"{today:%Y-%m}"
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", mes.strip()):
        raise ValueError(f"Campo “mes”: “{mes}” não é um mês; use aaaa-mm, por exemplo 2026-11.")
    return mes.strip()


def _label(line) -> str:
    return f"{STAGE_LABELS.get(line.stage, line.stage)} · {CHANNEL_LABELS.get(line.channel, line.channel)}"


def _outcome_bars(lines) -> list[Bar]:
    """One bar per stage and channel: its attempts, cut by what became of them."""
    top = max((l.attempts for l in lines), default=0) or 1
    bars = []
    for l in lines:
        bar, x = Bar(_label(l), l.attempts), 0.0
        for kind, label in OUTCOMES:
            value = getattr(l, kind)
            if value:
                width = 100 * value / top
                bar.segments.append(Segment(kind, label, value, round(x, 3), round(width, 3)))
                x += width
        bars.append(bar)
    return bars


def _recovery_bars(lines) -> list[Bar]:
    """One bar per stage and channel: the amount paid within the window after its notices."""
    top = max((l.recovered for l in lines), default=0) or 1
    return [Bar(_label(l), l.recovered, [Segment("recuperado", "Valor recuperado", 0, 0, round(float(100 * l.recovered / top), 3))],
                note=f"{_percent(l.rate)} das {l.accounts} contas alcançadas") for l in lines]


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f}%".replace(".", ",")


@dataclass
class Day:
    day: date
    counts: dict  # channel -> messages
    cost: object
    segments: list = field(default_factory=list)  # (channel, messages, y px, height px)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _forecast_days(rows, start: date) -> tuple[list[Day], list[str]]:
    """The forecast per day and channel, every day of it (a day without messages too), with its
    stacked bar's geometry; and the channels it uses, in a fixed order."""
    used = {r.channel for r in rows}
    channels = [c for c in CHANNEL_ORDER if c in used] + sorted(used - set(CHANNEL_ORDER))
    days = [Day(start + timedelta(days=i), dict.fromkeys(channels, 0), 0) for i in range(FORECAST_DAYS)]
    by_day = {d.day: d for d in days}
    for r in rows:
        d = by_day[r.date]
        d.counts[r.channel] += r.messages
        d.cost += r.cost
    top = max((d.total for d in days), default=0) or 1
    for d in days:
        y = CHART_HEIGHT
        for channel, n in d.counts.items():
            if n:
                height = (CHART_HEIGHT - 10) * n / top
                y -= height
                d.segments.append((channel, n, round(y, 2), round(height, 2)))
    return days, channels


def show(request: Request, mes: str = "", login: auth.Login = Depends(auth.require("reports.monthly"))):
    web = request.app.state.web
    today = web.now().date()
    try:
        month = _month(mes, today)
    except ValueError as exc:
        return error_page(request, login, 400, str(exc))
    lines = _month_report(web, month)
    first, last = month_bounds(month)
    shown = dict(mes=month, nome_mes=format_date(first, "MMMM 'de' yyyy", locale="pt_BR"), linhas=lines,
                 janela=WINDOW_DAYS, recuperado=lines.recovered, tentativas=sum(l.attempts for l in lines),
                 barras_tentativas=_outcome_bars(lines), barras_recuperado=_recovery_bars(lines),
                 anterior=f"{first - timedelta(days=1):%Y-%m}", seguinte=f"{last + timedelta(days=1):%Y-%m}",
                 nomes_mes=lambda m: format_date(date.fromisoformat(m + "-01"), "MMMM 'de' yyyy", locale="pt_BR"),
                 percentual=_percent, resultados=OUTCOMES, altura=CHART_HEIGHT,
                 rotulo_etapa=STAGE_LABELS, rotulo_canal=CHANNEL_LABELS)
    if login.may("reports.forecast"):
        days, channels = _forecast_days(web.forecast(today, FORECAST_DAYS), today)
        shown.update(previsao=days, canais=channels, previsao_total=sum(d.total for d in days),
                     previsao_custo=sum((d.cost for d in days), start=0))
    return page(request, login, "reports.html", **shown)


@dataclass
class _Kept:
    """One month's report as Relatórios drew it, and what it was drawn from."""
    log: tuple  # the log's (inode, size) when its attempts were read
    tail: bytes  # the log's last bytes then: an append-only log still has them there
    attempts: object  # the month's attempts as the report takes them (`monthly.Tally`), not the attempts
    invoices: dict | None  # the stored invoices' table (the same object while no write changed it)
    archive: tuple | None
    config: object
    lines: list


MONTHS = 3  # months whose tally is kept: this one, the last, and one more looked at
_reports: dict[str, _Kept] = {}  # the last MONTHS months asked
_reports_lock = threading.Lock()
TAIL = 256  # bytes of the log's end kept to recognise it
APPENDED = 16 << 20  # bytes appended since, past which the month's attempts are read again anyway


def forget() -> None:
    """Let go of the invoices' table each month's report was settled with (a version of the
    state): the tallies stay, and the next view settles them again with the invoices of then."""
    with _reports_lock:
        for month, kept in _reports.items():
            _reports[month] = replace(kept, invoices=None)


def _month_report(web, month: str) -> Report:
    """`month_report` (what `notifier report` prints), kept while what it reads is unchanged. Its
    attempts are read from a month and more of the log (13 s of CPU at a million records) and
    their tally is kept (columns of integers, `monthly.Tally`: 4 MB for a month at a million
    records, where the attempts were hundreds of megabytes) while the log only grew by lines that are no attempt's
    (`attempts_unchanged`: every staff action appends its record); the lines are drawn again
    from it when the stored invoices or the archive changed (a payment). The last MONTHS months
    asked for are kept."""
    snap = web.store.snapshot()
    log_path, config = web.config.attempt_log, web.config
    invoices, archive = snap.tables("invoices")[0], _file_version(archive_path_for(config.state))
    with _reports_lock:
        kept = _reports.pop(month, None)
        with open(log_path, "rb") as f:
            st = os.fstat(f.fileno())
            attempts = None
            if kept is not None and kept.config is config and kept.log[0] == st.st_ino \
                    and kept.log[1] <= st.st_size <= kept.log[1] + APPENDED:
                f.seek(max(0, kept.log[1] - TAIL))
                if f.read(min(TAIL, kept.log[1])) == kept.tail:
                    appended = f.read(st.st_size - kept.log[1])
                    appended = appended[:appended.rfind(b"\n") + 1]  # whole lines: a writer may be mid-line
                    if attempts_unchanged(appended):
                        attempts = kept.attempts
                        size = kept.log[1] + len(appended)
            if attempts is None:  # read again below, up to at least the log's last whole line now
                f.seek(max(0, st.st_size - (1 << 20)))
                end = f.read(st.st_size - f.tell())
                size = st.st_size - len(end) + end.rfind(b"\n") + 1
            f.seek(max(0, size - TAIL))
            tail = f.read(min(TAIL, size))
        if attempts is None:
            attempts = tally(month_attempts(web.log, month, config.tz), config.tz)
            lines = report_of(attempts, snap, config)
            from ..app import give_back_free_memory
            give_back_free_memory()  # what reading a month of the log freed (its attempts), not kept
        elif kept.invoices is not invoices or kept.archive != archive:
            lines = report_of(attempts, snap, config)
        else:
            lines = kept.lines
        if len(_reports) >= MONTHS:
            _reports.pop(next(iter(_reports)))
        _reports[month] = _Kept((st.st_ino, size), tail, attempts, invoices, archive, config, lines)
        return lines


def _file_version(path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _csv(write, rows, filename: str) -> Response:
    out = io.StringIO(newline="")
    write(rows, out)
    return Response(out.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def monthly_csv(request: Request, mes: str = "", login: auth.Login = Depends(auth.require("reports.monthly"))):
    """`notifier report --month MES --format csv`."""
    web = request.app.state.web
    try:
        month = _month(mes, web.now().date())
    except ValueError as exc:
        return error_page(request, login, 400, str(exc))
    return _csv(write_report_csv, _month_report(web, month), f"recuperacao-{month}.csv")


def forecast_csv(request: Request, login: auth.Login = Depends(auth.require("reports.forecast"))):
    """`notifier forecast --format csv` from the console's today, 30 days."""
    web = request.app.state.web
    today = web.now().date()
    rows = web.forecast(today, FORECAST_DAYS)
    return _csv(write_forecast_csv, rows, f"previsao-{today:%Y-%m-%d}.csv")
