"""Attempts as rows for people: a terminal table, CSV that Excel in Portuguese opens right, JSON Lines.

Every writer takes an iterator and writes as it goes, so a listing of a million attempts never
sits in memory. Excel set to Portuguese (Brazil) reads a CSV correctly when it is separated by
semicolons (its list separator, since the comma is the decimal mark), starts with a UTF-8 byte
order mark (otherwise it guesses Windows-1252 and breaks "Comércio"), and has dates as
dd/mm/aaaa hh:mm and numbers with a decimal comma.
"""
from __future__ import annotations

import csv
from decimal import Decimal
from typing import IO, Iterable, Iterator
from zoneinfo import ZoneInfo

import orjson

from notifier.log.history import Attempt, local_time
from notifier.staff.actor import neutralise

BOM = "\ufeff"

# What finance and customers read, in Portuguese.
STAGE_LABELS = {
    "reminder": "Lembrete",
    "due_today": "Vencimento hoje",
    "overdue": "Em atraso",
    "suspension_warning": "Aviso de suspensão",
    "suspended": "Suspensão",
    "deletion_warning": "Aviso de exclusão",
    "deletion_due": "Exclusão (tarefa interna)",
}
STATUS_LABELS = {
    "sending": "em envio",
    "sent": "enviado",
    "outbox": "gravado na caixa de saída local",
    "delivered": "entregue",
    "read": "lido",
    "undelivered": "não entregue",
    "failed": "falhou",
    "bounced": "devolvido",
    "task": "tarefa da equipe",
    "blocked": "bloqueado (configuração)",
    "unknown": "desconhecido (verificar)",
    "skipped": "não enviado",
}
CHANNEL_LABELS = {"email": "E-mail", "whatsapp": "WhatsApp", "sms": "SMS", "social": "Rede social", "staff": "Equipe"}
# Staff records: a contact made by hand (`notifier contact`) and a hold's reason.
CONTACT_CHANNELS = {"phone": "Telefone", "whatsapp": "WhatsApp", "instagram": "Instagram", "facebook": "Facebook",
                    "other": "Outro"}
CONTACT_OUTCOMES = {"reached": "Falou com o cliente", "no_answer": "Não atendeu", "wrong_contact": "Contato errado",
                    "promised_payment": "Prometeu pagar", "other": "Outro"}
# What a staff task is about (notifier/staff/actions.py `Task.kind`).
TASK_KINDS = {"social_manual": "Mensagem em rede social", "deletion_due": "Exclusão e protesto",
              "unknown": "Envio interrompido", "bounced": "E-mail devolvido",
              "escalation_waiting": "Escalonamento aguardando horário"}
HOLD_REASONS = {"promised_payment": "Promessa de pagamento", "disputed": "Contestação", "negotiating": "Negociação",
                "other": "Outro"}


def row(attempt: Attempt) -> dict:
    """One attempt as a flat row: the sending's facts and its latest status."""
    s, out = attempt.sending, attempt.outcome or {}
    last = attempt.updates[-1] if attempt.updates else {}
    evidence = out.get("evidence") or {}
    return {
        "id": s["id"], "time": s["time"], "account": s.get("account"), "invoices": s.get("invoices") or [],
        "stage": s.get("stage"), "channel": s.get("channel"), "recipient": s.get("recipient"),
        "actor": s.get("actor"), "template": s.get("template"), "attempt": s.get("attempt"),
        "status": attempt.status, "status_time": last.get("time"), "provider": out.get("provider"),
        "provider_id": out.get("provider_id"), "message_id": evidence.get("message_id"),
        "code": last.get("code") if last else None, "detail": last.get("detail") if last else None,
    }


def br_datetime(utc_text: str | None, tz: ZoneInfo) -> str:
    return local_time(utc_text, tz).strftime("%d/%m/%Y %H:%M") if utc_text else ""


def br_decimal(value: Decimal) -> str:
    """1234.5 -> "1234,50": a number Excel in Portuguese reads as a number (no thousands mark)."""
    return f"{Decimal(value):.2f}".replace(".", ",")


def write_json_lines(rows: Iterable[dict], out: IO[str]) -> int:
    n = 0
    for n, r in enumerate(rows, 1):
        out.write(orjson.dumps(r).decode() + "\n")
    return n


CSV_COLUMNS = (
    ("Data/hora", lambda r, tz: br_datetime(r["time"], tz)),
    ("Conta", lambda r, tz: r["account"]),
    ("Faturas", lambda r, tz: ", ".join(r["invoices"])),
    ("Etapa", lambda r, tz: STAGE_LABELS.get(r["stage"], r["stage"])),
    ("Canal", lambda r, tz: CHANNEL_LABELS.get(r["channel"], r["channel"])),
    ("Destinatário", lambda r, tz: r["recipient"]),
    ("Status", lambda r, tz: STATUS_LABELS.get(r["status"], r["status"])),
    ("Status em", lambda r, tz: br_datetime(r["status_time"], tz)),
    ("Provedor", lambda r, tz: r["provider"]),
    ("ID no provedor", lambda r, tz: r["provider_id"]),
    ("Message-ID", lambda r, tz: r["message_id"]),
    ("Código", lambda r, tz: r["code"]),
    ("Detalhe", lambda r, tz: r["detail"]),
    ("Modelo", lambda r, tz: r["template"]),
    ("Tentativa nº", lambda r, tz: r["attempt"]),
    ("Operador", lambda r, tz: r["actor"]),
    ("ID da tentativa", lambda r, tz: r["id"]),
)


def write_csv(rows: Iterable[dict], out: IO[str], tz: ZoneInfo) -> int:
    """Semicolon-separated, BOM first, Brazilian dates; `out` opened with newline=""."""
    n = -1
    for n, line in enumerate(csv_lines(rows, tz)):
        out.write(line)
    return max(n, 0)


def csv_lines(rows: Iterable[dict], tz: ZoneInfo) -> Iterator[str]:
    """The CSV's text a line at a time (the BOM with the header): a download streams it."""
    line = _Line()
    writer = csv.writer(line, delimiter=";", lineterminator="\r\n")
    writer.writerow([name for name, _ in CSV_COLUMNS])
    yield BOM + line.take()
    for r in rows:
        writer.writerow(["" if (v := get(r, tz)) is None else v for _, get in CSV_COLUMNS])
        yield line.take()


class _Line:
    """What csv.writer writes, kept until taken."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def take(self) -> str:
        text, self.text = self.text, ""
        return text


TABLE_COLUMNS = (("when (São Paulo)", 16), ("account", 16), ("stage", 18), ("channel", 8), ("recipient", 30),
                 ("status", 11), ("provider id", 0))


def table_lines(rows: Iterable[dict], tz: ZoneInfo) -> Iterator[str]:
    """Fixed-width lines, so the table streams (a width computed from all rows would not)."""
    yield _cells([name for name, _ in TABLE_COLUMNS])
    yield _cells(["-" * (width or 11) for _, width in TABLE_COLUMNS])
    for r in rows:
        yield _cells([br_datetime(r["time"], tz), r["account"], r["stage"], r["channel"], r["recipient"],
                      r["status"], r["provider_id"] or ""])


def _cells(values: list) -> str:
    out = []
    for (_, width), value in zip(TABLE_COLUMNS, values):
        text = "" if value is None else neutralise(str(value))
        if width:
            text = text if len(text) <= width else text[: width - 1] + "…"
            text = text.ljust(width)
        out.append(text)
    return "  ".join(out).rstrip()


def write_report_csv(lines, out: IO[str]) -> None:
    """The month's report (`reports.monthly.Line`s), one row per stage and channel: what `notifier
    report --format csv` prints and the console's Relatórios downloads."""
    out.write(BOM)
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Etapa", "Canal", "Tentativas", "Enviadas", "Falhas", "Bloqueadas", "Tarefas", "Outras",
                     "Entregues", "Lidas", "Devolvidas", "Contas", "Pagaram na janela", "Recuperação (%)",
                     "Valor recuperado (R$)"])
    for l in lines:
        writer.writerow([STAGE_LABELS.get(l.stage, l.stage), CHANNEL_LABELS.get(l.channel, l.channel), l.attempts,
                         l.sent, l.failed, l.blocked, l.task, l.other, l.delivered, l.read, l.bounced,
                         l.accounts, l.paid_accounts, br_decimal(l.rate * 100), br_decimal(l.recovered)])


def write_forecast_csv(rows, out: IO[str]) -> None:
    """The forecast (`reports.forecast.ForecastRow`s): what `notifier forecast --format csv` prints
    and the console's Relatórios downloads. The attempts CSV's names for stages and channels:
    finance puts the two side by side."""
    out.write(BOM)
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Data", "Etapa", "Canal", "Mensagens", "Custo (R$)"])
    for r in rows:
        writer.writerow([f"{r.date:%d/%m/%Y}", STAGE_LABELS.get(r.stage, r.stage),
                         CHANNEL_LABELS.get(r.channel, r.channel), r.messages, br_decimal(r.cost)])
