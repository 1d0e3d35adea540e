"""The audit report finance sends a customer who says "I never received anything", and what the
company shows a Procon officer or a judge.

One self-contained HTML page in Portuguese (no external file, font or script: it is mailed and
archived, and must look the same in ten years), printable on A4 in a few pages. It tells, in time
order, everything that happened with the customer: every attempt on every channel with an honest
status (accepted by the mail server is not delivered; a blocked or held notice was not sent), the
contacts staff made by hand, holds, payments and opt-outs (`staff.customer.contact_history`, the
console's own history). What reached the customer is shown as they saw it (the e-mail's HTML with
its Pix QR, the WhatsApp/SMS text); the exact bytes handed to the provider are not printed but
go in an appendix ZIP, each file named by the SHA-256 the log recorded before the send, which the
report prints. No server path, no configuration advice: a provider's own answer is quoted and
labelled as evidence. Every customer field is escaped (Jinja2 autoescape).
"""
from __future__ import annotations

import functools
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import jinja2

from notifier.config import Config
from notifier.log.attempts import AttemptLog, stored_message
from notifier.log.index import index_for
from notifier.log.messagestore import MessageStoreError
from notifier.log.verified import Scope
from notifier.log.verify import Verdict
from notifier.reports.exports import CHANNEL_LABELS, CONTACT_CHANNELS, CONTACT_OUTCOMES, HOLD_REASONS, STAGE_LABELS
from notifier.run.render import br_date, brl
from notifier.staff.customer import Event, contact_history, html_of_email

TEMPLATES = Path(__file__).resolve().parent / "templates"
EMAIL_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")

# An attempt's latest status in words an officer reads. `sent` is what the provider said when it
# took the message: for e-mail, the mail server accepted it (SENT_EMAIL), which is not delivery.
STATUS_WORDS = {
    "sending": "sem resposta registrada do provedor",
    "sent": "aceito pelo provedor",
    "outbox": "gravado na caixa de saída local: não enviado ao cliente",
    "delivered": "entregue (confirmado pelo provedor)",
    "read": "lido (confirmado pelo provedor)",
    "undelivered": "não entregue (informado pelo provedor)",
    "failed": "falhou: não enviado",
    "bounced": "devolvido pelo servidor de e-mail do destinatário",
    "task": "tarefa da equipe: enviar à mão",
    "blocked": "não enviado: bloqueado pela nossa configuração",
    "unknown": "envio interrompido: resultado desconhecido",
}
SENT_EMAIL = "aceito pelo servidor de e-mail"
# What the customer was handed: only these attempts show a text under "Texto enviado".
REACHED = {"sent", "delivered", "read", "bounced"}
# Provider answers quoted as evidence (ours, such as a blocked notice's advice, are not evidence).
EVIDENCE = {"failed", "undelivered", "bounced", "delivered", "read"}
SKIP_WORDS = {"superseded": "não enviado: substituído por um aviso posterior",
              "do-not-contact": "não enviado: número na lista de não contato (Não Me Ligue)",
              "hold": "não enviado: cobrança em pausa", "hours": "não enviado: fora do horário de contato"}


@dataclass
class Line:
    """One line of the report's chronology, and for an attempt what the customer saw."""
    number: int
    when: str  # dd/mm/aaaa hh:mm, São Paulo
    kind: str  # "E-mail", "Contato da equipe", "Pagamento"...
    who: str  # the recipient, or the staff member (none for a payment the bank reported)
    what: str  # the status or the fact, in Portuguese
    good: bool | None = None  # reached the customer (True), did not (False), a fact (None)
    note: str = ""  # staff's own words
    evidence: list[tuple[str, str]] = field(default_factory=list)  # (when, the provider's answer)
    attempt: dict | None = None  # an attempt's sending record
    subject: str = ""
    text: str = ""  # WhatsApp/SMS/social text, or an e-mail without HTML
    html: str = ""  # the e-mail's body as the customer's mail program showed it
    same_as: int | None = None  # the same text as that line's (another address)
    sha256: str = ""
    file: str = ""  # its name in the appendix
    problem: str = ""  # the stored bytes do not match their SHA-256


@dataclass
class Audit:
    lines: list[Line]
    appendix: dict[str, bytes]  # file name -> the exact bytes handed to the provider
    later: int  # records after the issue time, left out


def build(config: Config, log: AttemptLog, snapshot, account_id: str, issued: datetime,
          since: date | None = None, until: date | None = None) -> Audit:
    """The account's history up to `issued` (never a record dated after the report), oldest first.
    Its records come from the log's per-account index (`index_for`: the console's requests share
    one, kept up to date), not from a scan of the whole log."""
    invoices = snapshot.invoices(account_id)
    events = contact_history(index_for(log.path).account_records(account_id), invoices, config)
    logged_payments = {e.record.get("invoice") for e in events if e.kind in ("payment", "payment_corrected") and e.actor}
    done = {e.record.get("ref"): e for e in events if e.kind == "task_done"}
    lines, appendix, later, texts = [], {}, 0, {}
    for e in reversed(events):
        day = e.when.date()
        if e.kind == "task_done" or (e.kind == "payment" and not e.actor and e.record["invoice"] in logged_payments):
            continue  # a done task is told on its task's line; a payment recorded by hand, once
        if e.kind == "sending" and e.record.get("channel") == "staff":
            continue  # alerts and finance's deletion task are ours, not contacts with the customer
        if (since and day < since) or (until and day > until):
            continue
        if e.when > issued:
            later += 1
            continue
        line = Line(len(lines) + 1, e.when.strftime("%d/%m/%Y %H:%M"), "", e.actor, "")
        if e.kind == "sending":
            _attempt(line, e, log, done, appendix, texts)
        else:
            _fact(line, e)
        lines.append(line)
    return Audit(lines, appendix, later)


def _attempt(line: Line, e: Event, log: AttemptLog, done: dict, appendix: dict, texts: dict) -> None:
    s = e.record
    status, channel = e.status, s.get("channel")
    line.attempt, line.who = s, s.get("recipient", "")
    line.kind = f"{CHANNEL_LABELS.get(channel, channel)} · {STAGE_LABELS.get(s.get('stage'), s.get('stage'))}"
    line.what = SENT_EMAIL if status == "sent" and channel == "email" else STATUS_WORDS.get(status, status)
    line.good = status in REACHED and status != "bounced"
    first = e.updates[0] if e.updates else {}
    if status == "sent" and channel == "email" and first.get("provider_id"):
        line.what += f" (fila {first['provider_id']})"
    for u in e.updates:
        answer = (u.get("evidence") or {}).get("smtp_reply") or (
            " ".join(str(x) for x in (u.get("code"), u.get("detail")) if x) if u["event"] in EVIDENCE else "")
        if answer:
            line.evidence.append((_local(u["time"], e), answer))
        if u["event"] == "task":
            closed = done.get(u["id"])
            line.good = closed is not None
            line.what = (f"tarefa da equipe: enviada à mão por {closed.actor} em {closed.when:%d/%m/%Y %H:%M}"
                         if closed else "tarefa da equipe: enviar à mão; a equipe ainda não registrou o envio")
            line.note = closed.record.get("outcome", "") if closed else ""
    content = s.get("content") or {}
    line.subject = content.get("subject", "")
    where = stored_message(s)
    if where is not None:
        line.sha256 = where.sha256
        try:
            data = log.messages.get(where)
        except MessageStoreError as exc:
            line.problem = str(exc)
        else:
            line.file = f"{where.sha256}.{'eml' if data[:1] != b'{' else 'json'}"
            appendix[line.file] = data
    if not (status in REACHED or status == "task") or line.problem:
        return  # nothing was handed to the customer (or to staff): no text is shown as sent
    if channel == "email" and line.file.endswith(".eml"):
        line.html = _body(html_of_email(appendix[line.file]) or "")  # the bytes just read and checked
    line.text = "" if line.html else content.get("text") or _template_text(content)
    # Two addresses of one notice get the same message but for the addresses it names.
    key = (line.subject, EMAIL_ADDRESS.sub("@", line.html or line.text))
    line.same_as = texts.setdefault(key, line.number)
    if line.same_as == line.number:
        line.same_as = None


def _template_text(content: dict) -> str:
    """A WhatsApp approved template's variables, as the lines the customer read them in."""
    return "\n".join(f"{v}" for v in (content.get("content_variables") or {}).values())


def _body(html: str) -> str:
    """The e-mail's <body> content with its own style on a wrapper, to sit inside the report."""
    found = re.search(r"<body([^>]*)>(.*)</body>", html, re.S | re.I)
    if not found:
        return html
    style = re.search(r'style="([^"]*)"', found[1])
    return f'<div style="{style[1] if style else ""}">{found[2]}</div>'


def _local(utc_text: str, e: Event) -> str:
    return datetime.fromisoformat(utc_text).astimezone(e.when.tzinfo).strftime("%d/%m/%Y %H:%M")


def _fact(line: Line, e: Event) -> None:
    r = e.record
    reason = r.get("reason", "")
    if e.kind == "contact":
        line.kind = "Contato feito pela equipe"
        line.what = (f"por {_words(CONTACT_CHANNELS, r.get('channel'))}: {_words(CONTACT_OUTCOMES, r.get('outcome'))}")
        line.note = r.get("note", "")
    elif e.kind == "hold":
        line.kind = "Cobrança pausada"
        line.what = (f"até {_day(r.get('until'))}, motivo: {_words(HOLD_REASONS, reason)}; "
                     "nenhum aviso automático sai durante a pausa")
        line.note = r.get("note", "")
    elif e.kind == "release":
        line.kind, line.what = "Pausa encerrada", "a cobrança automática volta a seguir o calendário"
    elif e.kind == "payment":
        line.kind = "Pagamento"
        line.what = (f"fatura {r['invoice']} paga em {_day(r['paid'])}"
                     + (f", {brl(r['amount'])}, informado pelo banco" if "amount" in r else ", registrado pela equipe"))
    elif e.kind == "payment_corrected":
        line.kind = "Pagamento corrigido"
        line.what = f"fatura {r.get('invoice')}: data de pagamento de {_day(r.get('previous_paid'))} para {_day(r.get('paid'))}"
    elif e.kind == "opt_out":
        channel = r.get("channel")
        line.kind = "Pedido do cliente"
        line.what = f"não receber mais mensagens por {CHANNEL_LABELS.get(channel, channel)} (a partir de {_day(r.get('date'))})"
    elif e.kind == "escalation":
        line.kind = "Contato reforçado pela equipe"
        line.what = "envio imediato por " + ", ".join(CHANNEL_LABELS.get(c, c) for c in r.get("channels", ()))
        line.note = r.get("note", "")
    elif e.kind == "skipped":
        channel = r.get("channel")
        line.kind = f"{CHANNEL_LABELS.get(channel, channel)} · {STAGE_LABELS.get(r.get('stage'), r.get('stage'))}"
        line.who, line.good = r.get("recipient", ""), False
        line.what = SKIP_WORDS.get(reason.split(":")[0], "não enviado")
    else:
        line.kind, line.what = "Registro", e.kind.replace("_", " ")


def _words(labels: dict, key: str) -> str:
    """A label inside a sentence: "por telefone: não atendeu" ("WhatsApp" keeps its capitals)."""
    text = labels.get(key, key or "")
    return text if text[1:2].isupper() else text[:1].lower() + text[1:]


def _day(iso: str | None) -> str:
    return br_date(date.fromisoformat(iso)) if iso else "?"


def appendix_zip(audit: Audit, account_id: str) -> bytes:
    """The exact bytes of every message in the report, each named by its SHA-256, with a LEIAME
    that says which line each is and how to check it (`sha256sum`)."""
    buf = io.BytesIO()
    readme = ["Anexo do relatório de contatos de cobrança da conta " + account_id, "",
              "Cada arquivo é a mensagem exata entregue ao provedor; o nome é o SHA-256 do conteúdo,",
              "registrado antes do envio. Confira com: sha256sum ARQUIVO", "",
              "Nº  Data e hora       Canal e etapa                      Arquivo"]
    readme += [f"{l.number:<3} {l.when}  {l.kind:<34} {l.file}" for l in audit.lines if l.file]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("LEIAME.txt", "\n".join(readme) + "\n")
        for name, data in sorted(audit.appendix.items()):
            z.writestr(name, data)
    return buf.getvalue()


@functools.cache
def environment() -> jinja2.Environment:
    """One environment per process: the console renders many reports, each template compiled once."""
    # Not StrictUndefined as for customer messages: log records are open-ended (an old record
    # lacks a field added later), and a missing one shows empty.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(brl=brl, date=br_date)
    return env


def render_audit(config: Config, snapshot, audit: Audit, account_id: str, verdict: Verdict, issued: datetime,
                 appendix_name: str, since: date | None = None, until: date | None = None,
                 scope: Scope | None = None) -> str:
    """The report's HTML: the same for the screen and the PDF (nothing to click open). `scope`:
    what the verdict covers when the whole chain was not checked at the issue (the console's
    `ChainCheck`); None: `verdict` is a whole check made for this report."""
    account = snapshot.account(account_id)
    invoices = sorted(snapshot.invoices(account_id), key=lambda i: i.due)
    mentioned = {i for l in audit.lines if l.attempt for i in l.attempt.get("invoices") or ()}
    return environment().get_template("audit.html").render(
        company=config.company, account=account, account_id=account_id, invoices=invoices,
        archived_invoices=sorted(mentioned - {i.id for i in invoices}), audit=audit, verdict=verdict,
        generated=issued.astimezone(config.tz).strftime("%d/%m/%Y %H:%M"), since=since, until=until,
        appendix_name=appendix_name, messages=_messages(audit.lines), scope=scope,
        whole_at=scope.whole_at.astimezone(config.tz).strftime("%d/%m/%Y %H:%M") if scope else None,
    )


def _messages(lines: list[Line]) -> list[list[Line]]:
    """The texts handed over, each once: with it, the lines that sent the same to another address."""
    groups: dict[int, list[Line]] = {}
    for l in lines:
        if l.same_as:
            groups[l.same_as].append(l)
        elif l.html or l.text or l.problem:
            groups[l.number] = [l]
    return list(groups.values())
