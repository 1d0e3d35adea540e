"""Registro: finance's view of the contact-attempt log, the CSV of it, and the chain check.

The list and the CSV call `notifier/log/query.py`, as `notifier attempts` does (same filters, same
rows; the page newest first, 50 a page). A record's page is the attempt with its whole status
history and the message as sent. Verificar registro runs `notifier verify-log`'s check
(`log.verify.verify`, with the same head pasted from a summary as `--head` accepts) in a thread of
the console, one at a time, and the page polls its progress through htmx.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import date

from fastapi import Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from notifier.config import CHANNELS, STAGES
from notifier.log.index import index_for
from notifier.log.query import PAGE_SIZE, Query, actors, attempt, page as query_page, providers, stream
from notifier.reports.exports import CHANNEL_LABELS, STAGE_LABELS, STATUS_LABELS, csv_lines, row
from notifier.staff.actor import INVISIBLE

from .. import auth
from . import error_page, page

# The form's names (the agreed URL) -> Query's fields.
FILTERS = {"de": "since", "ate": "until", "conta": "account", "canal": "channel", "situacao": "status",
           "etapa": "stage", "pessoa": "actor", "provedor": "provider"}
FIELD_NAMES = {"de": "De", "ate": "Até", "conta": "Conta", "canal": "Canal", "situacao": "Situação", "etapa": "Etapa",
               "pessoa": "Pessoa", "provedor": "Provedor", "pagina": "Página"}
# Statuses a row can end in: the outcomes, later statuses, and a task closed on an attempt.
STATUSES = {**STATUS_LABELS, "task_done": "tarefa concluída", "task_assigned": "tarefa assumida"}
UPDATE_LABELS = {**STATUSES, "sent": "aceito pelo provedor"}


class BadFilter(ValueError):
    def __init__(self, name: str, reason: str):
        super().__init__(f"{FIELD_NAMES.get(name, name)} (“{name}”): {reason}")
        self.name = name


def _day(params, name: str) -> date | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else date.fromisoformat("x")
    except ValueError:
        raise BadFilter(name, f"“{text[:40]}” não é uma data (use o calendário, ou aaaa-mm-dd)") from None


def _text(params, name: str) -> str | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    if len(text) > 200 or any(not c.isprintable() or c in INVISIBLE for c in text):
        raise BadFilter(name, "texto inválido (uma linha, até 200 caracteres)")
    return text


def _choice(params, name: str, allowed) -> str | None:
    text = _text(params, name)
    if text is not None and text not in allowed:
        raise BadFilter(name, f"“{text[:40]}” não é uma opção deste filtro")
    return text


def parse_filters(params) -> tuple[Query, int]:
    """The query and page number of the form's fields; BadFilter naming the first bad one."""
    unknown = sorted(set(params) - set(FILTERS) - {"pagina"})
    if unknown:
        raise BadFilter(unknown[0], "este filtro não existe")
    since, until = _day(params, "de"), _day(params, "ate")
    if since and until and since > until:
        raise BadFilter("ate", f"{until:%d/%m/%Y} é antes de “de” ({since:%d/%m/%Y}): nenhum dia entre as duas")
    number = params.get("pagina", "").strip() or "1"
    if not number.isdigit() or not 1 <= int(number) <= 1_000_000:
        raise BadFilter("pagina", f"“{number[:20]}” não é um número de página")
    query = Query(since=since, until=until, account=_text(params, "conta"), channel=_choice(params, "canal", CHANNELS),
                  stage=_choice(params, "etapa", STAGES), status=_choice(params, "situacao", STATUSES),
                  actor=_text(params, "pessoa"), provider=_text(params, "provedor"))
    return query, int(number)


def _shown(query: Query) -> dict[str, str]:
    """The filters in force, by their form names (the links of the pages keep them)."""
    shown = {}
    for name, attr in FILTERS.items():
        value = getattr(query, attr)
        if value is not None:
            shown[name] = value.isoformat() if isinstance(value, date) else value
    return shown


def _bad(request: Request, login, exc: BadFilter):
    return error_page(request, login, 400, f"Filtro inválido — {exc}")


def show(request: Request, login: auth.Login = Depends(auth.require("log.view"))):
    try:
        query, number = parse_filters(request.query_params)
    except BadFilter as exc:
        return _bad(request, login, exc)
    web = request.app.state.web
    index = index_for(web.config.attempt_log, web.config.tz)
    found = query_page(index, query, number)
    return page(request, login, "registro.html", linhas=[row(a) for a in found.attempts], pagina=found,
                filtros=_shown(query), canais=CHANNEL_LABELS, etapas=STAGE_LABELS, situacoes=STATUSES,
                pessoas=actors(index), provedores=providers(index), tamanho=PAGE_SIZE)


def export(request: Request, login: auth.Login = Depends(auth.require("exports"))):
    """The filtered rows as `notifier attempts --format csv` writes them (Excel pt-BR), streamed."""
    try:
        query, _ = parse_filters(request.query_params)
    except BadFilter as exc:
        return _bad(request, login, exc)
    web = request.app.state.web
    tz = web.config.tz
    rows = (row(a) for a in stream(index_for(web.config.attempt_log, tz), query))
    parts = ["registro"] + [re.sub(r"[^A-Za-z0-9_.-]+", "-", v)[:60] for v in _shown(query).values()]
    return StreamingResponse(_chunks(csv_lines(rows, tz)), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{"-".join(parts)}.csv"'})


def _chunks(lines, size: int = 1 << 16):
    """Lines joined into blocks of about `size` characters (one network write each, not one a row)."""
    block, length = [], 0
    for line in lines:
        block.append(line)
        length += len(line)
        if length >= size:
            yield "".join(block)
            block, length = [], 0
    if block:
        yield "".join(block)


def record(attempt_id: str, request: Request, login: auth.Login = Depends(auth.require("log.view"))):
    web = request.app.state.web
    found = attempt(index_for(web.config.attempt_log, web.config.tz), attempt_id)
    if found is None:
        return error_page(request, login, 404, "Não há tentativa com este código no registro.")
    return page(request, login, "registro_detalhe.html", t=found, r=row(found), canais=CHANNEL_LABELS,
                etapas=STAGE_LABELS, situacoes=UPDATE_LABELS)


# --- Verificar registro ---------------------------------------------------------------------------

@dataclass
class Check:
    """One run of the chain check: who asked, the head pasted (if any), how far, the verdict."""
    by: str
    outside: object = None  # a Head pasted from a summary or an audit report
    done: int = 0
    size: int = 1
    started: float = field(default_factory=time.monotonic)
    verdict: object = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.verdict is None and self.error is None

    @property
    def percent(self) -> int:
        return min(100, self.done * 100 // max(self.size, 1))


_checks_lock = threading.Lock()


def _current(request: Request) -> Check | None:
    return getattr(request.app.state, "registro_check", None)


def verify_page(request: Request, login: auth.Login = Depends(auth.require("log.view"))):
    return page(request, login, "registro_verificar.html", v=_current(request))


def verify_progress(request: Request, login: auth.Login = Depends(auth.require("log.view"))):
    """The check's box alone (htmx polls it while the check runs)."""
    return page(request, login, "registro_verificacao.html", v=_current(request))


async def verify_start(request: Request, login: auth.Login = Depends(auth.require("log.view"))):
    """Start the check (with a pasted head, if given) unless one is running; back to the page."""
    from notifier.log.verify import parse_head
    form = await request.form()
    pasted = str(form.get("cabeca", "")).strip()
    outside = parse_head(pasted) if pasted else None
    if pasted and outside is None:
        return page(request, login, "registro_verificar.html", status=422, v=_current(request), cabeca=pasted[:300],
                    erro="“cabeça”: cole a linha do resumo diário (“Registro de tentativas: N registros, último hash "
                         "…”) ou a cabeça do relatório de auditoria (N:hash, 64 dígitos hexadecimais).")
    web = request.app.state.web
    with _checks_lock:
        check = _current(request)
        busy = check is not None and check.running
        if not busy:
            check = Check(login.user.name, outside)
            request.app.state.registro_check = check
            threading.Thread(target=_run, args=(web, check), name="verificar-registro", daemon=True).start()
    aviso = ("Uma verificação já está em andamento (uma de cada vez); quando ela terminar, verifique de novo"
             + (" com a cabeça colada." if outside else ".")) if busy else None
    return await run_in_threadpool(page, request, login, "registro_verificar.html", v=check, aviso=aviso,
                                   cabeca=pasted[:300] if busy else None)


def _run(web, check: Check) -> None:
    """`notifier verify-log [--head]`: the chain, every stored message, the head the state keeps."""
    from notifier.log.attempts import LogError
    from notifier.log.verify import cut_notes, verify

    def progress(done: int, size: int) -> None:
        check.done, check.size = done, size
    try:
        kept, size = web.log.settled()
        check.size = max(size, 1)
        verdict = verify(web.log.path, web.log.messages, kept, True, size=size, outside=check.outside,
                         progress=progress)
        verdict.notes.extend(cut_notes(web.store.snapshot().meta("log_cuts")))
        check.verdict = verdict
    except LogError as exc:  # the log cannot be read: said on the page, naming the file
        check.error = str(exc)
    except Exception:  # a bug: the page must not show a check running for ever
        check.error = "Erro inesperado na verificação; o erro foi registrado no log do console."
        raise

