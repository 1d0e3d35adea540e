"""The audit report finance sends a customer who says "I never received anything".

One self-contained HTML page in Portuguese (no external file, font or script: it is mailed and
archived, and must look the same in ten years), printable on A4: who we are (CDC art. 42-A), the
account and its invoices, every contact attempt in time order with its status history, the
provider's ids, the exact text the customer was sent and the exact bytes handed to the provider
(each checked against the SHA-256 the log recorded before the send), and the verdict of the whole
log's hash chain with its head (`verify-log` checks every other stored message). Every customer
field is escaped (Jinja2 autoescape): a company name may contain "<script>".
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import jinja2

from notifier.log.attempts import AttemptLog, stored_message
from notifier.config import Config
from notifier.reports.exports import CHANNEL_LABELS, STAGE_LABELS, STATUS_LABELS, br_datetime
from notifier.log.history import Attempt, Filters, attempts
from notifier.log.messagestore import MessageStoreError
from notifier.run.render import br_date, brl
from notifier.log.verify import Verdict

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class ShownMessage:
    """What an attempt's stored payload looks like in the report, and whether it checks."""
    text: str | None
    sha256: str | None
    ok: bool
    problem: str = ""


def stored(log: AttemptLog, attempt: Attempt) -> ShownMessage:
    where = stored_message(attempt.sending)
    if where is None:
        return ShownMessage(None, None, True)
    try:
        data = log.messages.get(where)
    except MessageStoreError as exc:
        return ShownMessage(None, where.sha256, False, str(exc))
    return ShownMessage(data.decode("utf-8", "replace"), where.sha256, True)


def environment() -> jinja2.Environment:
    # Not StrictUndefined as for customer messages: log records are open-ended (an old record
    # lacks a field added later, a staff alert has no template), and a missing one shows empty.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(brl=brl, date=br_date)
    return env


def render_audit(config: Config, snapshot, log: AttemptLog, account_id: str, verdict: Verdict,
                 recorded_head: dict | None, now: datetime, since: date | None = None, until: date | None = None,
                 expanded: bool = False) -> str:
    """The report's HTML. `expanded` opens every <details> (for the PDF, where nobody can click)."""
    tz = config.tz
    # Staff alerts and tasks about the account are ours, not contacts with the customer.
    found = [a for a in attempts(log, Filters(account=account_id, since=since, until=until, tz=tz))
             if a.sending.get("channel") != "staff"]
    found.sort(key=lambda a: a.sending["time"])
    account = snapshot.account(account_id)
    invoices = sorted(snapshot.invoices(account_id), key=lambda i: i.due)
    mentioned = sorted({i for a in found for i in a.sending.get("invoices") or ()} - {i.id for i in invoices})
    return environment().get_template("audit.html").render(
        company=config.company, account=account, account_id=account_id, invoices=invoices,
        archived_invoices=mentioned, attempts=[(a, stored(log, a)) for a in found], verdict=verdict,
        recorded_head=recorded_head, generated=now.astimezone(tz).strftime("%d/%m/%Y %H:%M"),
        since=since, until=until, expanded=expanded, log_name=log.path.name,
        when=lambda text: br_datetime(text, tz), stage_label=lambda s: STAGE_LABELS.get(s, s),
        status_label=lambda s: STATUS_LABELS.get(s, s), channel_label=lambda c: CHANNEL_LABELS.get(c, c),
    )
