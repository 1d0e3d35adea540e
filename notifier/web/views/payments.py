"""Pagamentos: record a payment finance read on the bank statement, correct one, and the list of
payments recorded by hand, from the same library call as `notifier pay` (`staff.payments`).

Each is a `payment` / `payment_corrected` record of the attempt log, signed by the person logged
in; the list reads them back through the log index. A refused payment (unknown invoice, a date in
the future or before the issue, a different date for a paid invoice without a correction and its
reason) comes back on the page with a 422 and a Portuguese sentence, and nothing is written.
"""
from __future__ import annotations

from datetime import date

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from notifier.log.index import index_for
from notifier.staff.actor import InvalidText
from notifier.staff.payments import ReasonRequired, record_payment
from notifier.state.importer import payment_date_problems
from notifier.state.store import AlreadyPaid, StoreError

from .. import auth
from . import page


def show(request: Request, login: auth.Login = Depends(auth.require("payments.record"))):
    return _render(request, login)


def _render(request: Request, login: auth.Login, status: int = 200, **shown):
    web = request.app.state.web
    recorded = index_for(web.config.attempt_log, web.config.tz).payment_records()
    return page(request, login, "pagamentos.html", status=status, pagamentos=list(reversed(recorded)),
                hoje=web.now().date(), **shown)


async def submit(request: Request, login: auth.Login = Depends(auth.require("payments.record"))):
    form = await request.form()
    return await run_in_threadpool(_submit, request, login, form)


def _submit(request: Request, login: auth.Login, form):
    web = request.app.state.web
    correct = form.get("corrigir") == "1"
    sent = {k: str(form.get(k, ""))[:2000] for k in ("fatura", "pago_em", "motivo")}
    try:
        invoice_id, paid = _invoice_and_day(web, sent, correct)
        invoice, previous = record_payment(web.store, web.log, web.now(), invoice_id, paid, login.actor, correct,
                                           sent["motivo"])
    except PaymentRefused as exc:
        return _render(request, login, 422, erro=str(exc), enviado=sent, corrigir=correct)
    except ReasonRequired:
        return _render(request, login, 422, enviado=sent, corrigir=correct,
                       erro="“motivo”: diga por que a data do pagamento muda (ele fica no registro).")
    except AlreadyPaid as exc:
        text = (f"a fatura {exc.invoice_id} já está paga em {exc.paid:%d/%m/%Y}: nada a corrigir." if correct else
                f"a fatura {exc.invoice_id} já está paga em {exc.paid:%d/%m/%Y}. Para mudar a data, use "
                "“Corrigir um pagamento” e diga o motivo.")
        return _render(request, login, 422, erro=text, enviado=sent, corrigir=correct)
    except InvalidText:
        return _render(request, login, 422, enviado=sent, corrigir=correct,
                       erro="“motivo”: use texto simples, sem caracteres de controle, até 2.000 caracteres.")
    except StoreError:  # the checks above say it in Portuguese first; a race ends here
        return _render(request, login, 422, enviado=sent, corrigir=correct,
                       erro="a fatura não pôde ser registrada agora; confira o número e a data e tente de novo.")
    done = (f"Pagamento da fatura {invoice.id} corrigido: de {previous:%d/%m/%Y} para {invoice.paid:%d/%m/%Y}."
            if previous else f"Pagamento da fatura {invoice.id} registrado: pago em {invoice.paid:%d/%m/%Y}.")
    return _render(request, login, feito=done)


class PaymentRefused(ValueError):
    """What is wrong with the form, in Portuguese, naming the field."""


def _invoice_and_day(web, sent: dict, correct: bool) -> tuple[str, date]:
    """The invoice and the date of the form, checked as `record_payment` checks them, so the
    person reads the reason in Portuguese (the library refuses the same in the same way)."""
    invoice_id = sent["fatura"].strip()
    if not invoice_id:
        raise PaymentRefused("“fatura”: informe o número da fatura.")
    try:
        paid = date.fromisoformat(sent["pago_em"].strip())
    except ValueError:
        raise PaymentRefused("“pago_em”: informe a data do pagamento (dd/mm/aaaa).") from None
    invoice = web.store.snapshot().invoice(invoice_id)
    if invoice is None:
        raise PaymentRefused(f"“fatura”: não há fatura {invoice_id} na base. Confira o número no extrato.")
    today = web.now().date()
    for _, reason in payment_date_problems(invoice.issued, paid, today):
        if paid > today:
            raise PaymentRefused(f"“pago_em”: {paid:%d/%m/%Y} está no futuro (hoje é {today:%d/%m/%Y}).")
        raise PaymentRefused(f"“pago_em”: {paid:%d/%m/%Y} é antes da emissão da fatura ({invoice.issued:%d/%m/%Y}).")
    return invoice_id, paid
