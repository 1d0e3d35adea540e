"""The month's report reads its attempts from the log's index (issue 21: the Relatórios page at a
million records), and says exactly what the whole-log reading said: the same attempts in the same
order with the same statuses, so the same numbers and the same CSV, byte for byte.

The log is made by real commands over two months: cycles sending e-mails to a real SMTP server, a
WhatsApp notice our configuration blocks (and its staff alert), payments within the window and
after it, in four months (September has none).
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest

from notifier.log.attempts import AttemptLog
from notifier.log.history import Filters, attempts
from notifier.reports.exports import write_report_csv
from notifier.reports.monthly import _notice_day, build, month_attempts, month_bounds, payments_from
from notifier.state.store import Store, archive_path_for
from tests.conftest import ROOT, clean_cli
from tests.smtp_server import SmtpServer

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
BILLING = {
    "accounts": [
        {"id": "padaria", "company": "Padaria Pão Quente Ltda", "document": "45.723.174/0001-10", "emails": ["financeiro@padaria.com.br"],
         "whatsapp": "+5511987654321", "due_day": 20},
        {"id": "oficina", "company": "Oficina do Zé Ltda", "document": "11.222.333/0001-81", "emails": ["ze@oficina.com.br", "caixa@oficina.com.br"],
         "due_day": 28},
    ],
    "invoices": [
        {"id": "2026-10-padaria", "account": "padaria", "amount": "189.90", "issued": "2026-10-05"},
        {"id": "2026-11-padaria", "account": "padaria", "amount": "189.90", "issued": "2026-11-05"},
        {"id": "2026-11-oficina", "account": "oficina", "amount": "1234.56", "issued": "2026-11-05"},
    ],
}
MONTHS = ("2026-09", "2026-10", "2026-11", "2026-12")


@pytest.fixture(scope="module")
def lived(tmp_path_factory):
    cli = clean_cli(tmp_path_factory.mktemp("month"))
    (cli.workdir / "billing.json").write_text(json.dumps(BILLING, ensure_ascii=False), encoding="utf-8")
    with SmtpServer() as smtp:
        cli.env["EMAIL_URL"] = smtp.url()
        cli("import", "billing.json", "--date", "2026-10-06")
        for day in ("2026-10-17", "2026-10-20", "2026-10-23"):
            cli("run-once", "--date", day, check=False)  # exit 1: the blocked WhatsApp is a problem to fix
        cli("pay", "2026-10-padaria", "--date", "2026-10-24", "--by", "bruno")
        cli("import", "billing.json", "--date", "2026-11-06")
        for day in ("2026-11-17", "2026-11-20", "2026-11-25"):
            cli("run-once", "--date", day, check=False)
        cli("pay", "2026-11-padaria", "--date", "2026-11-22", "--by", "bruno")
        cli("run-once", "--date", "2026-12-01", check=False)
        cli("pay", "2026-11-oficina", "--date", "2026-12-02", "--by", "bruno")
    return cli


def whole_log_month(log: AttemptLog, month: str, tz) -> list:
    """The month's attempts as `month_attempts` found them before the index: two passes over the
    whole log (notifier/log/history.py `attempts`)."""
    first, last = month_bounds(month)
    found = attempts(log, Filters(since=first - timedelta(days=7), until=last + timedelta(days=40), tz=tz))
    return [a for a in found if a.sending.get("channel") != "staff" and _notice_day(a, tz).strftime("%Y-%m") == month]


def test_the_months_attempts_from_the_index_are_the_whole_logs_and_so_is_the_csv(lived):
    log = AttemptLog(lived.workdir / "attempts.jsonl")
    snapshot = Store(lived.workdir / "state.json").snapshot()
    sendings = [a.sending for a in attempts(log, Filters())]
    counted = 0
    for month in MONTHS:
        old = whole_log_month(log, month, SAO_PAULO)
        new = list(month_attempts(log, month, SAO_PAULO))
        assert [(a.sending, a.updates) for a in new] == [(a.sending, a.updates) for a in old], month
        counted += len(new)
        wanted = {i for a in old for i in a.sending.get("invoices") or ()}
        paid = payments_from(snapshot, archive_path_for(lived.workdir / "state.json"), wanted)
        expected = StringIO(newline="")
        write_report_csv(build(old, paid.get, SAO_PAULO), expected)
        csv = subprocess.run([sys.executable, str(ROOT / "run.py"), "report", "--month", month, "--format", "csv"],
                             cwd=lived.workdir, env=lived.env, capture_output=True, check=True).stdout  # bytes
        assert csv == expected.getvalue().encode("utf-8"), month
    assert counted == len([s for s in sendings if s["channel"] != "staff"])  # every attempt in one month


def test_the_consoles_forecast_is_kept_per_version_of_the_state(lived):
    """Relatórios and its CSV ask for the same 30-day forecast (tens of seconds at 50,000 accounts):
    the console computes it once per version of the state file, and a new version is planned again."""
    from notifier.config import load_config
    from notifier.reports.forecast import store_forecast
    from notifier.web.app import Web
    web = Web(load_config(None, {}, lived.workdir / "state.json"))
    start = date(2026, 12, 7)
    kept = web.forecast(start, 30)
    assert web.forecast(start, 30) is kept  # the same version: not planned again
    assert kept == store_forecast(Store(lived.workdir / "state.json").snapshot(), web.config, start, 30)
    december = {"id": "2026-12-padaria", "account": "padaria", "amount": "189.90", "issued": "2026-12-05"}
    (lived.workdir / "billing.json").write_text(json.dumps(
        {**BILLING, "invoices": BILLING["invoices"] + [december]}, ensure_ascii=False), encoding="utf-8")
    lived("import", "billing.json", "--date", "2026-12-06")  # a new version of the state
    planned = web.forecast(start, 30)
    assert planned == store_forecast(Store(lived.workdir / "state.json").snapshot(), web.config, start, 30)
    assert planned != kept and any(r.stage == "reminder" for r in planned)  # December's invoice is dunned
    assert web.forecast(start + timedelta(days=1), 30) is not planned  # another first day: its own forecast


def test_relatorios_keeps_the_months_report_until_a_payment_changes_it(lived, tmp_path):
    """Relatórios keeps the month's report (it reads a month and more of the log: seconds at a
    million records) while the log, the archive and the stored invoices are unchanged; a payment
    corrected by another process shows at the next view, as `notifier report` prints it."""
    import shutil
    from notifier.config import load_config
    from notifier.reports.monthly import month_report
    from notifier.web.app import Web
    from notifier.web.views import reports
    shutil.copytree(lived.workdir, tmp_path / "w")
    cli = clean_cli(tmp_path / "w")
    web = Web(load_config(None, {}, cli.workdir / "state.json"))

    def printed() -> list[dict]:
        return [json.loads(line) for line in cli("report", "--month", "2026-11", "--format", "json").stdout.splitlines()]

    kept = reports._month_report(web, "2026-11")
    assert reports._month_report(web, "2026-11") is kept and [l.to_json() for l in kept] == printed()
    # Paid on 22/11, five days after its reminder (17/11): not within the window; corrected to
    # 18/11, the reminder recovered it.
    reminder = [l for l in kept if (l.stage, l.channel) == ("reminder", "email")][0]
    assert reminder.paid_accounts == 0 and reminder.recovered == 0
    attempts = reports._reports["2026-11"].attempts
    cli("pay", "2026-11-padaria", "--date", "2026-11-18", "--correct", "--reason", "data do banco", "--by", "bruno")
    now = reports._month_report(web, "2026-11")
    # The log gained a payment record only: the month's attempts were not read again.
    assert reports._reports["2026-11"].attempts is attempts
    reminder = [l for l in now if (l.stage, l.channel) == ("reminder", "email")][0]
    assert now is not kept and reminder.paid_accounts == 1 and reminder.recovered == Decimal("189.90")
    assert now.recovered == kept.recovered + Decimal("189.90")
    assert [l.to_json() for l in now] == printed()
    assert now == month_report(AttemptLog(cli.workdir / "attempts.jsonl"), Store(cli.workdir / "state.json").snapshot(),
                               web.config, "2026-11")


def test_only_a_sending_or_a_record_about_one_changes_the_months_attempts(lived):
    """Relatórios reads the month's attempts again when the log gained a line of an attempt (a
    sending, or an outcome or status naming one by its `ref`), and not for the other records."""
    from notifier.reports.monthly import attempts_unchanged
    lines = (lived.workdir / "attempts.jsonl").read_bytes().splitlines(keepends=True)
    events = {json.loads(line)["event"]: line for line in lines}
    assert not attempts_unchanged(events["sending"]) and not attempts_unchanged(events["sent"])
    assert attempts_unchanged(events["payment"]) and attempts_unchanged(events["payment"] + events["payment"])
    assert not attempts_unchanged(events["payment"] + events["sent"])


def test_the_tallys_columns_settle_as_sets_of_the_attempts_would(lived):
    """The month's tally keeps numbers, not the attempts' strings (the console keeps it for three
    months): settled, it gives each line the accounts reached, those that paid an invoice within the
    window after the notice (on its last day too, not the day after, not before the notice) and the
    amount of those invoices; the month's amount counts an invoice once however many lines it is
    in. Checked against the plain sets of many made attempts: several invoices to a notice, one
    invoice in many lines, payments missing, unpaid, or with amounts of other exponents."""
    import random
    from notifier.log.history import Attempt
    from notifier.reports.monthly import Payment, tally, settle
    rnd = random.Random(21)
    stages, channels = ("reminder", "overdue", "suspended"), ("email", "whatsapp", "sms")
    outcomes = (["sent"], ["sent", "delivered"], ["sent", "delivered", "read"], ["sent", "bounced"], ["failed"],
                ["blocked"], ["task"], [], ["sent", "undelivered"])
    invoices = [f"2026-11-acc-{n}" for n in range(1200)]
    payments = {}
    for invoice in invoices[:1000]:
        paid = rnd.choice([None, *(date(2026, 11, d) for d in range(1, 31))])
        payments[invoice] = Payment(Decimal(rnd.choice(["10.5", "10.50", "189.90", "1234.56", "0.01"])), paid)
    found = []
    for n in range(6000):
        sending = {"id": f"a{n}", "event": "sending", "stage": rnd.choice(stages), "channel": rnd.choice(channels),
                   "account": f"acc-{rnd.randrange(1500)}", "notice_date": f"2026-11-{rnd.randrange(1, 31):02d}",
                   "invoices": rnd.sample(invoices, rnd.choice([0, 1, 1, 1, 2, 3]))}
        found.append(Attempt(sending, [{"event": e, "ref": f"a{n}"} for e in rnd.choice(outcomes)]))
    lines = settle(tally(found, SAO_PAULO), payments.get)

    reached, paid_accounts, paid_invoices = {}, {}, {}
    for a in found:
        s, events = a.sending, a.events()
        key = (s["stage"], s["channel"])
        if not events & {"sent", "delivered", "read"} or events & {"bounced", "undelivered"}:
            continue
        reached.setdefault(key, set()).add(s["account"])
        notice = date.fromisoformat(s["notice_date"])
        for invoice in s["invoices"]:
            p = payments.get(invoice)
            if p and p.paid and notice <= p.paid <= notice + timedelta(days=3):
                paid_accounts.setdefault(key, set()).add(s["account"])
                paid_invoices.setdefault(key, {})[invoice] = p.amount
    got = {(l.stage, l.channel): (l.accounts, l.paid_accounts, str(l.recovered)) for l in lines}
    assert got == {key: (len(reached.get(key, ())), len(paid_accounts.get(key, ())),
                         str(sum(paid_invoices.get(key, {}).values(), Decimal("0")))) for key in got}
    assert len(got) == 9 and all(0 < l.paid_accounts < l.accounts for l in lines)
    month = {}
    for paid in paid_invoices.values():
        month.update(paid)
    assert str(lines.recovered) == str(sum(month.values(), Decimal("0")))
    assert lines.recovered < sum(l.recovered for l in lines)  # some invoice was in several lines
