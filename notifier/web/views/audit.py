"""Auditoria: the audit report of one account for a period, in the browser and as downloads.

The report is the one `notifier audit` writes (notifier/reports/audit.py: `build`, `render_audit`,
`appendix_zip`; reports/pdf.py for the PDF), with the log's head on it. It is a self-contained
page with its own inline style, which the console's Content-Security-Policy forbids: the page
shows it in a sandboxed frame served with a CSP of its own (`FRAME_CSP`), as the customer page
shows an e-mail.

The chain the report vouches for is checked by the console's `ChainCheck` (notifier/log/
verified.py): the whole chain at start and every hour, and for each report the records appended
since; the report says which (the CLI checks the whole chain every time, which at a million
records takes seconds).
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from notifier.log.index import index_for
from notifier.reports.audit import appendix_zip, build, render_audit
from notifier.reports.pdf import PdfError, html_to_pdf
from notifier.staff.search import find

from .. import auth
from . import data, error_page, page

# The report in the console's frame: nothing in it may run or reach out (its images are data:
# URLs), its own inline style may apply, and only our own pages may frame it.
FRAME_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


class BadInput(ValueError):
    """A field of the request that can only be a mistake; the message names it, in Portuguese."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Period:
    since: date | None
    until: date | None

    def suffix(self) -> str:
        """The period in a file name: "-2026-11-01-a-2026-11-30"; nothing for the whole history."""
        if not (self.since or self.until):
            return ""
        return f"-{self.since or 'inicio'}-a-{self.until or 'hoje'}"


def _day(value: str, field: str, label: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadInput(400, f"Campo “{field}” ({label}): “{value}” não é uma data; use aaaa-mm-dd, "
                            "por exemplo 2026-11-01.") from None


def period(de: str, ate: str) -> Period:
    """The `de`/`ate` of a request (as `notifier audit --since/--until`); both optional."""
    since, until = _day(de, "de", "início do período"), _day(ate, "ate", "fim do período")
    if since and until and until < since:
        raise BadInput(400, f"Campo “ate”: o fim do período ({data(until)}) é anterior ao início ({data(since)}).")
    return Period(since, until)


def _known(web, account_id: str) -> None:
    """An account of the store, or one the log still speaks of (as `notifier audit` accepts)."""
    if web.store.snapshot().account(account_id) is None and not index_for(web.config.attempt_log).account_records(account_id):
        raise BadInput(404, f"Campo “conta”: não há cliente com o código “{account_id}”, nem contatos dele no registro.")


def _issued(web) -> datetime:
    """As `notifier audit --date`: a console showing another day (--date) issues the report at
    that day's end, never later than now; nothing dated after the issue time is listed."""
    now = web.now()
    if web.day is None:
        return now
    return min(datetime.now(web.config.tz), datetime.combine(web.day, time(23, 59, 59), web.config.tz))


def _name(account_id: str, when: Period) -> str:
    """The downloads' file name, without extension: safe in a Content-Disposition header."""
    return "auditoria-" + re.sub(r"[^A-Za-z0-9._-]", "_", account_id) + when.suffix()


def _attachment(body: bytes | str, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _report(web, account_id: str, de: str, ate: str) -> tuple[Period, str]:
    """The period asked and the report's HTML: `notifier audit`'s library calls, the chain as
    `ChainCheck` checked it. BadInput for a bad period or an unknown account."""
    when = period(de, ate)
    _known(web, account_id)
    snap, issued = web.store.snapshot(), _issued(web)
    found = build(web.config, web.log, snap, account_id, issued, when.since, when.until)
    verdict, scope = web.chain.verdict()
    return when, render_audit(web.config, snap, found, account_id, verdict, issued,
                              _name(account_id, when) + ".anexo.zip", when.since, when.until, scope)


def _refused(request: Request, login, exc: BadInput) -> HTMLResponse:
    return error_page(request, login, exc.status, str(exc))


def show(request: Request, conta: str = "", de: str = "", ate: str = "", q: str = "",
         login: auth.Login = Depends(auth.require("reports.audit"))):
    """Without `conta`: the search for the account (results as you type, `notifier find`). With
    it: the period's form, the report in its frame and the downloads."""
    web = request.app.state.web
    if not conta:
        found = find(web.store.snapshot(), q) if q.strip() else []
        template = "audit_results.html" if request.headers.get("hx-request") else "audit.html"
        return page(request, login, template, q=q, encontrados=found, conta="")
    try:
        _known(web, conta)
    except BadInput as exc:
        return page(request, login, "audit.html", status=exc.status, erro=str(exc), q=conta, encontrados=[], conta="")
    shown = dict(conta=conta, cliente=web.store.snapshot().account(conta), de=de, ate=ate, emissao=_issued(web))
    try:
        when = period(de, ate)
    except BadInput as exc:
        return page(request, login, "audit.html", status=exc.status, erro=str(exc), periodo=None, **shown)
    return page(request, login, "audit.html", periodo=when, arquivo=_name(conta, when), **shown)


def html(account_id: str, request: Request, de: str = "", ate: str = "", tela: str = "",
         login: auth.Login = Depends(auth.require("reports.audit"))):
    """The report as HTML: a download; with `tela=1`, for the page's sandboxed frame."""
    try:
        when, text = _report(request.app.state.web, account_id, de, ate)
    except BadInput as exc:
        return _refused(request, login, exc)
    if tela:
        response = HTMLResponse(text)
        response.headers["Content-Security-Policy"] = FRAME_CSP
        return response
    return _attachment(text, "text/html; charset=utf-8", _name(account_id, when) + ".html")


def pdf(account_id: str, request: Request, de: str = "", ate: str = "",
        login: auth.Login = Depends(auth.require("reports.audit"))):
    """The same report printed to PDF (A4) by headless Chromium, as `notifier audit --pdf`."""
    try:
        when, text = _report(request.app.state.web, account_id, de, ate)
    except BadInput as exc:
        return _refused(request, login, exc)
    with tempfile.TemporaryDirectory() as tmp:
        printable = Path(tmp, "relatorio.html")
        printable.write_text(text, encoding="utf-8")
        try:
            html_to_pdf(printable, Path(tmp, "relatorio.pdf"))
        except PdfError as exc:
            return error_page(request, login, 503, f"Não foi possível gerar o PDF: {exc}. O relatório em HTML "
                                                   "está disponível.")
        body = Path(tmp, "relatorio.pdf").read_bytes()
    return _attachment(body, "application/pdf", _name(account_id, when) + ".pdf")


def appendix(account_id: str, request: Request, de: str = "", ate: str = "",
             login: auth.Login = Depends(auth.require("reports.audit"))):
    """The appendix ZIP: the exact messages the report names, each by its SHA-256."""
    web = request.app.state.web
    try:
        when = period(de, ate)
        _known(web, account_id)
    except BadInput as exc:
        return _refused(request, login, exc)
    found = build(web.config, web.log, web.store.snapshot(), account_id, _issued(web), when.since, when.until)
    return _attachment(appendix_zip(found, account_id), "application/zip", _name(account_id, when) + ".anexo.zip")


def legacy(account_id: str, request: Request, formato: str = "html", de: str = "", ate: str = "",
           login: auth.Login = Depends(auth.require("reports.audit"))):
    """`/clientes/ID/auditoria?formato=html|pdf|zip`, the address before the Auditoria page: the
    same downloads."""
    if formato == "pdf":
        return pdf(account_id, request, de, ate, login)
    if formato == "zip":
        return appendix(account_id, request, de, ate, login)
    return html(account_id, request, de, ate, "", login)
