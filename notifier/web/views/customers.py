"""Clientes and Cliente: find a customer, see everything about them, act on them.

Each view checks its action in one place (`auth.require`), calls the library function the CLI
command calls (search, `customer_view`, the staff actions signed with the logged-in `Actor`) and
renders a template. An action answers with the customer page again, saying what was done (or,
with a 422, what was wrong with the form), so the person sees the result where they acted.

The views are plain `def` (FastAPI runs them in its threadpool) and an action's work runs there
too (`_act`): a store write, a read of the log or a slow provider during an escalation holds up
only its own request, never the event loop every other person's request goes through.
"""
from __future__ import annotations

from datetime import date, datetime

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from notifier.log.index import index_for
from notifier.log.messagestore import MessageStoreError
from notifier.reports.exports import (CHANNEL_LABELS, CONTACT_CHANNELS, CONTACT_OUTCOMES, HOLD_REASONS,
                                      STAGE_LABELS, STATUS_LABELS)
from notifier.run.delivery import DeliveryError
from notifier.staff import actions
from notifier.staff.actor import InvalidText
from notifier.staff.customer import OUTBOX, customer_view, email_html
from notifier.staff.optout import opt_out
from notifier.staff.payments import record_payment
from notifier.staff.search import find
from notifier.state.store import StoreError

from .. import auth
from . import error_page, page

ESCALATION_CHANNELS = {"whatsapp": "WhatsApp", "sms": "SMS", "social": "Rede social", "email": "E-mail"}
OPT_OUT_CHANNELS = {"whatsapp": "WhatsApp", "sms": "SMS", "social": "Rede social"}
KIND_LABELS = {"sending": "Mensagem", "contact": "Contato feito pela equipe", "hold": "Pausa na cobrança",
               "release": "Pausa encerrada", "escalation": "Escalonamento", "opt_out": "Pediu para não receber",
               "skipped": "Não enviada", "task_done": "Tarefa concluída", "payment": "Pagamento registrado",
               "payment_corrected": "Pagamento corrigido", "unknown": "Envio interrompido"}
# Why a notice was not sent (the log's `reason`); a hold's reason is "hold: <its reason>".
SKIP_REASONS = {"superseded": "substituída por um aviso posterior", "do-not-contact": "número na lista Não Me Ligue",
                **{f"hold: {k}": f"cobrança pausada ({v.lower()})" for k, v in HOLD_REASONS.items()}}
LABELS = {"canal": CHANNEL_LABELS, "etapa": STAGE_LABELS, "tipo": KIND_LABELS, "resultado": CONTACT_OUTCOMES,
          "motivo": HOLD_REASONS, "contato": CONTACT_CHANNELS, "pulada": SKIP_REASONS,
          "situacao": {**STATUS_LABELS, "outbox": "gravada na caixa de saída local (não enviada)"}}
# The message page: nothing of it may run or reach out (its images are data: URLs), and only our
# own customer page may frame it.
MESSAGE_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


def _now(request: Request) -> datetime:
    return request.app.state.web.now()


def search(request: Request, q: str = "", login: auth.Login = Depends(auth.require("customers.view"))):
    found = find(request.app.state.web.store.snapshot(), q) if q.strip() else []
    template = "customers_results.html" if request.headers.get("hx-request") else "customers.html"
    return page(request, login, template, q=q, encontrados=found)


def show(account_id: str, request: Request, login: auth.Login = Depends(auth.require("customers.view"))):
    return _customer(request, login, account_id)


def _customer(request: Request, login: auth.Login, account_id: str, status: int = 200, **shown) -> HTMLResponse:
    web = request.app.state.web
    today = _now(request).date()
    view = customer_view(web.store.snapshot(), web.config, index_for(web.config.attempt_log), account_id, today)
    if view is None:
        return error_page(request, login, 404, "Não há cliente com este código.")
    return page(request, login, "customer.html", status=status, v=view, hoje=today, rotulos=LABELS,
                canais_escalar=ESCALATION_CHANNELS, canais_contato=CONTACT_CHANNELS, resultados=CONTACT_OUTCOMES,
                motivos=HOLD_REASONS, canais_optout=OPT_OUT_CHANNELS, **shown)


def message(account_id: str, attempt_id: str, request: Request,
                  login: auth.Login = Depends(auth.require("customers.view"))):
    """The e-mail as the customer saw it, for the sandboxed frame of the customer page."""
    web = request.app.state.web
    sending = index_for(web.config.attempt_log).sending(attempt_id)
    if sending is None or sending.get("account") != account_id:
        return Response("Mensagem não encontrada.", status_code=404, media_type="text/plain; charset=utf-8")
    try:
        html = email_html(web.log, sending)
    except MessageStoreError:
        html = "<p>A mensagem guardada não confere com o registro: foi alterada depois do envio.</p>"
    response = HTMLResponse(html or "<p>Sem versão HTML.</p>")
    response.headers["Content-Security-Policy"] = MESSAGE_CSP
    return response


async def _act(request: Request, login: auth.Login, account_id: str, work) -> HTMLResponse:
    """Run `work(form)` (a staff action); the page again with what it says, or the error with 422."""
    form = await request.form()
    return await run_in_threadpool(_done, request, login, account_id, work, form)


def _done(request: Request, login: auth.Login, account_id: str, work, form) -> HTMLResponse:
    try:
        done = work(form)
    except (DeliveryError, InvalidText, StoreError, ValueError) as exc:
        return _customer(request, login, account_id, status=422, erro=str(exc))
    return _customer(request, login, account_id, feito=done)


def _choice(form, name: str, allowed: dict) -> str:
    value = str(form.get(name, ""))
    if value not in allowed:
        raise ValueError(f"escolha um valor para “{name}”")
    return value


def _channels(form, allowed: dict) -> list[str]:
    """The channels ticked on the form (boxes named `canal`): at least one."""
    channels = [c for c in form.getlist("canal") if c in allowed]
    if not channels:
        raise ValueError("escolha ao menos um canal")
    return channels


def _day(form, name: str) -> date:
    try:
        return date.fromisoformat(str(form.get(name, "")))
    except ValueError:
        raise ValueError(f"“{name}”: informe uma data (dd/mm/aaaa)") from None


async def escalate(account_id: str, request: Request, login: auth.Login = Depends(auth.require("customers.escalate"))):
    web = request.app.state.web

    def work(form):
        wanted = _channels(form, ESCALATION_CHANNELS)
        outcomes, waiting, refused = actions.escalate(
            web.store, web.config, web.log, web.renderer, lambda: _now(request), account_id, login.actor,
            wanted, str(form.get("nota", "")))
        status = LABELS["situacao"]
        lines = [f"{CHANNEL_LABELS.get(o.job.notice.channel)} → {o.job.notice.recipient}: "
                 + status["outbox" if o.result.status == "sent" and o.result.provider == OUTBOX else o.result.status]
                 for o in outcomes]
        lines += [f"{CHANNEL_LABELS.get(n.channel)} → {n.recipient}: aguardando o horário de contato"
                  + (f" (a partir de {at:%d/%m/%Y %H:%M})" if at else "") for n, at in waiting]
        lines += [f"{CHANNEL_LABELS.get(n.channel)} → {n.recipient}: não enviado (número na lista Não Me Ligue)"
                  for n in refused]
        return "Escalonamento registrado. " + "; ".join(lines)
    return await _act(request, login, account_id, work)


async def contact(account_id: str, request: Request, login: auth.Login = Depends(auth.require("customers.contact"))):
    web = request.app.state.web

    def work(form):
        actions.record_contact(web.store, web.log, _now(request), account_id, login.actor,
                               _choice(form, "canal", CONTACT_CHANNELS), _choice(form, "resultado", CONTACT_OUTCOMES),
                               str(form.get("nota", "")))
        return "Contato registrado."
    return await _act(request, login, account_id, work)


async def hold(account_id: str, request: Request, login: auth.Login = Depends(auth.require("customers.hold"))):
    web = request.app.state.web

    def work(form):
        placed = actions.place_hold(web.store, web.log, web.config, _now(request), account_id, login.actor,
                                    _choice(form, "motivo", HOLD_REASONS), _day(form, "ate"),
                                    str(form.get("nota", "")))
        warn = "".join(f" Atenção: a fatura {i.id} chega à suspensão em {d:%d/%m/%Y} durante a pausa, sem aviso; "
                       "avise o cliente." for i, d in placed.unwarned)
        warn += "".join(f" A fatura {i.id} chega à data de exclusão ({d:%d/%m/%Y}) durante a pausa."
                        for i, d in placed.deletions)
        return f"Cobrança pausada até {placed.hold.until:%d/%m/%Y}.{warn}"
    return await _act(request, login, account_id, work)


async def release(account_id: str, request: Request, login: auth.Login = Depends(auth.require("customers.hold"))):
    web = request.app.state.web

    def work(_form):
        actions.release_hold(web.store, web.log, _now(request), account_id, login.actor)
        return "Pausa encerrada: a cobrança volta no próximo ciclo."
    return await _act(request, login, account_id, work)


async def stop_channel(account_id: str, request: Request, login: auth.Login = Depends(auth.require("customers.optout"))):
    web = request.app.state.web

    def work(form):
        channels = _channels(form, OPT_OUT_CHANNELS)
        now = _now(request)
        opt_out(web.store, web.log, now, account_id, channels, now.date(), login.actor)
        return "Não enviaremos mais por " + ", ".join(OPT_OUT_CHANNELS[c] for c in channels) + "."
    return await _act(request, login, account_id, work)


async def pay(account_id: str, request: Request, login: auth.Login = Depends(auth.require("payments.record"))):
    web = request.app.state.web

    def work(form):
        invoice = web.store.snapshot().invoice(str(form.get("fatura", "")))
        if invoice is None or invoice.account != account_id:
            raise ValueError("escolha uma fatura deste cliente")
        invoice, _ = record_payment(web.store, web.log, _now(request), invoice.id, _day(form, "pago_em"), login.actor)
        return f"Pagamento da fatura {invoice.id} registrado em {invoice.paid:%d/%m/%Y}."
    return await _act(request, login, account_id, work)
