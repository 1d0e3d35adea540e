"""Staff actions (issue 18, points 2-5): who acts (`Actor`), what staff may type, holds that do
not replace each other, escalations that wait for contact hours, payments in the log. Real
subprocesses, a real store and log."""
from __future__ import annotations

import getpass
import json
import re
import signal
from datetime import datetime

import pytest

from notifier.config import load_config
from notifier.log.attempts import AttemptLog
from notifier.staff.actor import Actor, InvalidText, check_note
from notifier.state.store import Store
from tests.conftest import ROOT
from tests.cycle_helpers import account, records, setup
from tests.fake_twilio import fake_twilio  # noqa: F401  (fixture)
from tests.fault_helpers import start, wait_for

DAY = "2026-11-24"


def status(cli, day: str) -> dict:
    """`status --json` (which exits 1 while no cycle has run: stale)."""
    return json.loads(cli("status", "--json", "--date", day, check=False).stdout)


def library(cli):
    """The state, log and config of `cli`'s folder, as the web console would open them."""
    config = load_config(cli.workdir / "notifier.toml", {}, cli.workdir / "state.json")
    log = AttemptLog(config.attempt_log)
    return Store(config.state, log=log), log, config


# --- the Actor ---------------------------------------------------------------------------------------


def test_every_staff_function_logs_the_actor_with_its_role_and_client(cli):
    from notifier.staff.actions import close_task, place_hold, record_contact, release_hold, tasks
    from notifier.staff.optout import opt_out
    from notifier.staff.payments import record_payment
    setup(cli, [account("acme", social={"instagram": "@acme"}), account("beta")])
    cli("run-once", "--date", DAY)  # a social_manual task to close
    store, log, config = library(cli)
    now = datetime.fromisoformat(f"{DAY}T10:00:00-03:00")
    web = Actor("ana", "manager", "203.0.113.7")
    place_hold(store, log, config, now, "acme", web, "negotiating", datetime(2026, 12, 1).date())
    release_hold(store, log, now, "acme", web)
    record_contact(store, log, now, "acme", web, "phone", "reached")
    [task] = tasks(log.records())
    close_task(log, now, task.id, web)
    opt_out(store, log, now, "acme", ["whatsapp"], now.date(), web)
    record_payment(store, log, now, "2026-11-beta", now.date(), web)
    mine = [r for r in records(cli.workdir) if r.get("actor") == "ana"]
    assert [r["event"] for r in mine] == ["hold", "release", "contact", "task_done", "opt_out", "payment"]
    assert {(r["role"], r["client"]) for r in mine} == {("manager", "203.0.113.7")}
    # the command line's actor has neither
    cli("contact", "beta", "--by", "bia", "--channel", "phone", "--outcome", "reached", "--date", DAY)
    [bia] = [r for r in records(cli.workdir) if r.get("actor") == "bia"]
    assert "role" not in bia and "client" not in bia


@pytest.mark.parametrize("name, problem", [
    ("", "is empty"), ("   ", "is empty"), ("a" * 81, "81 characters; at most 80"),
    ("ana\nbia", "line break"), ("ana\x1b[31m", "U+001B"), ("\u202eana", "U+202E"), ("an\u200ba", "U+200B"),
    ("ana\ufeff", "U+FEFF"), ("\u2066ana", "U+2066"),
])
def test_an_actor_name_is_one_short_printable_line(name, problem):
    with pytest.raises(InvalidText, match=re.escape(problem)):
        Actor(name)
    with pytest.raises(InvalidText, match="client"):
        Actor("ana", "manager", name or "\u200f")


def test_a_note_may_have_line_breaks_but_no_escapes_and_at_most_2000_characters():
    assert check_note("linha 1\nlinha 2 — São Paulo") == "linha 1\nlinha 2 — São Paulo"
    assert Actor("  Ana Souza ").name == "Ana Souza"
    for bad, problem in (("\x1b[2J", "U+001B"), ("a\rb", "U+000D"), ("x" * 2001, "2,001 characters"),
                         ("fim\u202e", "U+202E")):
        with pytest.raises(InvalidText, match=re.escape(problem)):
            check_note(bad)


BAD_INPUT = [
    (["--by", ""], "--by", "is empty"),
    (["--by", "x" * 100_000], "--by", "100,000 characters; at most 80"),
    (["--by", "ana\nbia"], "--by", "line break"),
    (["--by", "\u202eana"], "--by", "U+202E"),
    (["--by", "ana", "--note", "pago \x1b[31mhoje"], "--note", "U+001B"),
    (["--by", "ana", "--note", "x" * 2001], "--note", "2,001 characters"),
]


@pytest.mark.parametrize("args, option, problem", BAD_INPUT, ids=range(len(BAD_INPUT)))
def test_bad_staff_input_is_one_clear_error_and_nothing_is_written(cli, args, option, problem):
    setup(cli, [account("acme")])
    before = (cli.workdir / "state.json").read_bytes()
    commands = [["contact", "acme", "--channel", "phone", "--outcome", "reached"],
                ["hold", "acme", "--reason", "other", "--until", "2026-12-01"],
                ["escalate", "acme", "--channel", "email"]]
    if "--note" not in args:
        commands += [["release", "acme"], ["opt-out", "acme", "--channel", "sms"], ["pay", "2026-11-acme"],
                     ["tasks", "done", "abcdef"]]
    for command in commands:
        proc = cli(*command, *args, "--date", DAY, check=False)
        assert proc.returncode == 2 and option in proc.stderr and problem in proc.stderr, (command, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr) < 500
    assert records(cli.workdir) == [] and (cli.workdir / "state.json").read_bytes() == before


# --- point 3: holds ------------------------------------------------------------------------------------


def hold_records(cli) -> list[dict]:
    return [r for r in records(cli.workdir) if r["event"] == "hold"]


def test_a_second_hold_by_another_person_is_refused_unless_replace_and_both_are_logged(cli):
    setup(cli, [account("acme")])
    cli("hold", "acme", "--by", "ana", "--reason", "negotiating", "--until", "2026-12-01", "--date", DAY)
    before = (cli.workdir / "state.json").read_bytes()
    refused = cli("hold", "acme", "--by", "bia", "--reason", "disputed", "--until", "2026-12-10", "--date", DAY,
                  check=False)
    assert refused.returncode == 1
    assert "already on hold (negotiating, until 01/12/2026) placed by ana on 24/11/2026: pass --replace" in refused.stderr
    assert (cli.workdir / "state.json").read_bytes() == before and len(hold_records(cli)) == 1
    out = cli("hold", "acme", "--by", "bia", "--reason", "disputed", "--until", "2026-12-10", "--replace", "--date", DAY)
    assert "replaces the hold of ana (negotiating, until 01/12/2026)" in out.stdout
    first, second = hold_records(cli)
    assert (first["actor"], first["reason"]) == ("ana", "negotiating") and "replaces" not in first
    assert second["actor"] == "bia" and second["replaces"] == {
        "by": "ana", "reason": "negotiating", "since": DAY, "until": "2026-12-01", "note": ""}
    [held] = status(cli, DAY)["holds"]
    assert (held["by"], held["until"]) == ("bia", "2026-12-10")
    # the same person changes their own hold; an ended hold is nobody's
    cli("hold", "acme", "--by", "bia", "--reason", "disputed", "--until", "2026-12-15", "--date", DAY)
    cli("hold", "acme", "--by", "caio", "--reason", "other", "--until", "2026-12-20", "--date", "2026-12-16")


def test_a_hold_lasting_past_an_invoice_deletion_date_says_so(cli):
    setup(cli, [account("acme")])  # due 20/11/2026: deleted on 20/12/2026
    out = cli("hold", "acme", "--by", "ana", "--reason", "negotiating", "--until", "2026-12-20", "--date", DAY)
    assert "deletion" not in out.stdout and "deletions" not in hold_records(cli)[-1]  # over on that day
    out = cli("hold", "acme", "--by", "ana", "--reason", "negotiating", "--until", "2026-12-21", "--date", DAY)
    assert ("note: invoice 2026-11-acme reaches its deletion date 20/12/2026 during this hold: its deletion warning "
            "and finance's deletion task wait until the hold ends (21/12/2026)") in out.stdout
    assert hold_records(cli)[-1]["deletions"] == {"2026-11-acme": "2026-12-20"}


def test_release_of_a_misspelt_account_says_no_such_account(cli):
    setup(cli, [account("acme")])
    proc = cli("release", "acmee", "--by", "ana", "--date", DAY, check=False)
    assert proc.returncode == 1 and "no account 'acmee' in the store" in proc.stderr
    proc = cli("release", "acme", "--by", "ana", "--date", DAY, check=False)
    assert proc.returncode == 1 and "account 'acme' is not on hold" in proc.stderr


# --- point 2: an escalation outside contact hours waits -------------------------------------------------


def test_an_escalation_outside_contact_hours_waits_and_the_daemon_sends_it_at_the_next_allowed_time(cli, fake_twilio):
    setup(cli, [account("acme", whatsapp="+5511987654321")])
    cli.env.update(fake_twilio.env())
    sunday, monday = "2026-11-29", "2026-11-30"
    out = cli("escalate", "acme", "--by", "ana", "--channel", "whatsapp", "--date", sunday)
    assert ("whatsapp → +5511987654321: waits for contact hours: the daemon sends it from 30/11/2026 08:00"
            in out.stderr)
    [escalation] = [r for r in records(cli.workdir) if r["event"] == "escalation"]
    assert escalation["waiting_until"] == {"whatsapp": "2026-11-30T08:00-03:00"}
    [waiting] = status(cli, sunday)["waiting_escalations"]
    assert (waiting["id"], waiting["account"], waiting["channel"], waiting["until"]) == (
        escalation["id"], "acme", "whatsapp", "2026-11-30T08:00-03:00")
    shown = cli("status", "--date", sunday, check=False).stdout
    assert "escalations: 1 waiting for contact hours" in shown and "acme whatsapp until 30/11/2026 08:00" in shown
    [task] = [t for t in cli.json("tasks", "--open") if t["kind"] == "escalation_waiting"]
    assert task["id"] == escalation["id"] and task["until"] == "2026-11-30T08:00-03:00"
    assert "waits for contact hours until 30/11/2026 08:00" in cli("tasks").stdout
    cli("run-once", "--date", sunday)  # still Sunday: it waits
    assert fake_twilio.forms == [] and len(status(cli, sunday)["waiting_escalations"]) == 1

    daemon = start(cli, "daemon", "--date", monday)  # Monday 09:00: within contact hours
    try:
        wait_for(lambda: any(r.get("escalation_of") == escalation["id"] and r["event"] == "sending"
                             for r in records(cli.workdir)) and fake_twilio.forms, timeout=90)
    finally:
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=30) == 0
    [sending] = [r for r in records(cli.workdir) if r.get("escalation_of") == escalation["id"]]
    assert (sending["actor"], sending["channel"], sending["tutorial"]) == ("ana", "whatsapp", True)
    assert {f["To"] for f in fake_twilio.forms} == {"whatsapp:+5511987654321"}
    assert status(cli, monday)["waiting_escalations"] == [] and cli.json("tasks", "--open") == []
    forms = len(fake_twilio.forms)
    cli("run-once", "--date", monday)
    assert len(fake_twilio.forms) == forms  # sent once


def test_a_waiting_escalation_for_an_account_that_paid_meanwhile_is_skipped_not_sent(cli, fake_twilio):
    setup(cli, [account("acme", whatsapp="+5511987654321")])
    cli.env.update(fake_twilio.env())
    cli("escalate", "acme", "--by", "ana", "--channel", "whatsapp", "--date", "2026-11-29")
    cli("pay", "2026-11-acme", "--date", "2026-11-29")
    cli("run-once", "--date", "2026-11-30")
    assert fake_twilio.forms == [] and status(cli, "2026-11-30")["waiting_escalations"] == []
    [skipped] = [r for r in records(cli.workdir) if r["event"] == "skipped" and r.get("escalation_of")]
    assert skipped["actor"] == "ana" and "no open invoice on 30/11/2026" in skipped["reason"]


def test_an_escalation_sent_now_ends_the_one_waiting_on_that_channel(cli, fake_twilio):
    setup(cli, [account("acme", whatsapp="+5511987654321", social={"instagram": "@acme"})])
    cli.env.update(fake_twilio.env())
    cli("escalate", "acme", "--by", "ana", "--channel", "whatsapp", "--channel", "social", "--date", "2026-11-29")
    assert {t["channel"] for t in status(cli, "2026-11-29")["waiting_escalations"]} == {"whatsapp", "social"}
    cli("escalate", "acme", "--by", "bia", "--channel", "whatsapp", "--now", "--date", "2026-11-29")
    assert [t["channel"] for t in status(cli, "2026-11-29")["waiting_escalations"]] == ["social"]
    forms = len(fake_twilio.forms)
    cli("run-once", "--date", "2026-11-30")
    assert len(fake_twilio.forms) == forms  # the waiting WhatsApp did not go a second time
    assert status(cli, "2026-11-30")["waiting_escalations"] == []  # the social one went (a task for staff)


# --- point 4: bidi and zero-width characters ------------------------------------------------------------


def test_an_import_with_bidi_or_zero_width_characters_is_refused_naming_file_line_and_field(cli):
    billing = {"accounts": [account("acme", company="Acme \u202eLtda"), account("beta", contact_name="B\u200beatriz")],
               "invoices": []}
    (cli.workdir / "billing.json").write_text(json.dumps(billing, indent=1), encoding="utf-8")
    proc = cli("import", "billing.json", "--date", "2026-11-10", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    text = (cli.workdir / "billing.json").read_text()
    line = text[:text.index("202e")].count("\n") + 1
    assert (f"billing.json:{line}: accounts[0].company: contains U+202E at position 6, a bidi control or zero-width "
            "character") in proc.stderr
    assert "accounts[1].contact_name: contains U+200B at position 2" in proc.stderr
    assert not (cli.workdir / "state.json").exists()
    src = (ROOT / "examples" / "accounts.csv").read_text(encoding="utf-8").replace("Padaria São", "Padaria\u2066 São")
    (cli.workdir / "accounts.csv").write_text(src, encoding="utf-8")
    (cli.workdir / "invoices.csv").write_text((ROOT / "examples" / "invoices.csv").read_text(encoding="utf-8"))
    proc = cli("import", "accounts.csv", "--date", "2026-11-10", check=False)
    assert proc.returncode == 1 and "accounts.csv:2: company: contains U+2066 at position 8" in proc.stderr, proc.stderr
    assert not (cli.workdir / "state.json").exists()


def test_stored_text_with_bidi_controls_is_shown_neutralised(cli):
    """A state written before they were refused (or edited by hand) still prints safely."""
    setup(cli, [account("acme")])
    state = cli.workdir / "state.json"
    state.write_text(state.read_text(encoding="utf-8").replace("Acme Ltda", "Acme \u202eadtL"), encoding="utf-8")
    for command in (["accounts"], ["show", "acme"]):
        out = cli(*command).stdout
        assert "Acme <U+202E>adtL" in out and "\u202e" not in out, command


# --- point 5: payments are in the log -------------------------------------------------------------------


def test_payments_recorded_with_pay_come_back_to_a_state_rebuilt_from_a_re_import(cli):
    setup(cli, [account("acme"), account("beta"), account("gama")])
    cli("pay", "2026-11-acme", "--by", "ana", "--date", "2026-11-21")
    cli("pay", "2026-11-gama", "--by", "ana", "--date", "2026-11-21")
    cli("pay", "2026-11-gama", "--by", "bia", "--date", "2026-11-22", "--correct", "--reason", "extrato")
    [paid] = [r for r in records(cli.workdir) if r["event"] == "payment" and r["invoice"] == "2026-11-acme"]
    assert (paid["actor"], paid["account"], paid["paid"]) == ("ana", "acme", "2026-11-21")
    # The state is lost: deleted, and rebuilt from the billing file (which knows of no payment).
    for leftover in cli.workdir.glob("state.*"):
        if leftover.is_file():
            leftover.unlink()
    cli("import", "billing.json", "--date", "2026-11-10")
    assert cli.json("show", "acme")["invoices"][0]["paid"] is None
    run = cli("run-once", "--date", DAY)
    assert "2 payment(s) recorded with `pay` restored" in run.stderr, run.stderr
    assert cli.json("show", "acme")["invoices"][0]["paid"] == "2026-11-21"
    assert cli.json("show", "gama")["invoices"][0]["paid"] == "2026-11-22"  # the correction, the latest
    sent = {r["account"] for r in records(cli.workdir) if r["event"] == "sending" and r["time"] >= "2026-11-24"}
    assert sent == {"beta"}  # nothing for the invoices paid before the rebuild


def test_a_re_import_with_another_payment_date_keeps_it_and_says_so(cli):
    setup(cli, [account("acme")])
    cli("pay", "2026-11-acme", "--by", "ana", "--date", "2026-11-21")
    (cli.workdir / "state.json").unlink()
    billing = json.loads((cli.workdir / "billing.json").read_text())
    billing["invoices"][0]["paid"] = "2026-11-19"
    (cli.workdir / "billing.json").write_text(json.dumps(billing))
    cli("import", "billing.json", "--date", "2026-11-23")
    run = cli("run-once", "--date", DAY)
    assert ("invoice 2026-11-acme: the state says paid on 2026-11-19, the attempt log's `pay` record 2026-11-21: "
            "kept 2026-11-19") in run.stderr
    assert cli.json("show", "acme")["invoices"][0]["paid"] == "2026-11-19"


# --- small things: tasks and status ---------------------------------------------------------------------


def test_tasks_show_sao_paulo_times_and_close_by_a_unique_prefix_of_six_characters(cli):
    setup(cli, [account("acme", social={"instagram": "@acme"})])
    cli("run-once", "--date", DAY)  # 09:00 in São Paulo, 12:00 UTC
    [task] = cli.json("tasks", "--open")
    shown = cli("tasks").stdout
    assert "time (São Paulo)" in shown and "24/11/2026 09:00" in shown and "T12:" not in shown
    short = cli("tasks", "done", task["id"][:5], "--by", "bia", check=False)
    assert short.returncode == 1 and "give the id, or at least its first 6 characters" in short.stderr
    unknown = cli("tasks", "done", "zzzzzzzz", "--by", "bia", check=False)
    assert unknown.returncode == 1 and "no staff task 'zzzzzzzz'" in unknown.stderr
    out = cli("tasks", "done", task["id"][:6], "--by", "bia")
    assert f"closed task {task['id']}" in out.stdout
    [done] = [r for r in records(cli.workdir) if r["event"] == "task_done"]
    assert done["ref"] == task["id"]


def test_an_ambiguous_task_prefix_is_refused_naming_the_ids():
    from notifier.staff.actions import Task, find_task
    found = [Task(id_, "unknown", "", "acme", "email", "", "") for id_ in ("abcdef01", "abcdef02", "abcd9999")]
    with pytest.raises(Exception, match="'abcdef' starts 2 task ids \\(abcdef01, abcdef02\\): give more of the id"):
        find_task(found, "abcdef")
    assert find_task(found, "abcdef02").id == "abcdef02" and find_task(found, "abcd99").id == "abcd9999"


def test_status_prints_the_last_counts_as_a_table(cli):
    setup(cli, [account("acme", social={"instagram": "@acme"}), account("beta")])
    cli("run-once", "--date", DAY)
    out = cli("status", "--date", DAY).stdout
    assert "{" not in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["channel"])
    assert lines[header - 1].strip() == "last counts:"
    columns = lines[header].split()
    rows = {line.split()[0]: dict(zip(columns[1:], line.split()[1:])) for line in lines[header + 2:header + 4]}
    # No provider configured: the e-mails went to the local outbox, never counted as sent.
    assert rows["email"]["outbox"] == "2" and "sent" not in columns and rows["social"]["task"] == "1"


def test_staff_commands_still_require_by_and_pay_defaults_to_the_system_user(cli):
    setup(cli, [account("acme")])
    for command in (["release", "acme"], ["contact", "acme", "--channel", "phone", "--outcome", "reached"],
                    ["hold", "acme", "--reason", "other", "--until", "2026-12-01"], ["opt-out", "acme", "--channel", "sms"]):
        proc = cli(*command, "--date", DAY, check=False)
        assert proc.returncode == 2 and "Missing option '--by'" in proc.stderr, (command, proc.stderr)
    cli("pay", "2026-11-acme", "--date", DAY)
    [paid] = [r for r in records(cli.workdir) if r["event"] == "payment"]
    assert paid["actor"] == getpass.getuser()


def test_a_waiting_escalation_to_a_channel_opted_out_of_or_an_account_on_hold_is_skipped(cli, fake_twilio):
    setup(cli, [account("acme", whatsapp="+5511987654321"), account("beta", whatsapp="+5511987654322")])
    cli.env.update(fake_twilio.env())
    for name in ("acme", "beta"):
        cli("escalate", name, "--by", "ana", "--channel", "whatsapp", "--date", "2026-11-29")
    cli("opt-out", "acme", "--channel", "whatsapp", "--by", "bia", "--date", "2026-11-29")
    cli("hold", "beta", "--by", "bia", "--reason", "negotiating", "--until", "2026-12-05", "--date", "2026-11-29")
    cli("run-once", "--date", "2026-11-30")
    assert fake_twilio.forms == [] and status(cli, "2026-11-30")["waiting_escalations"] == []
    skipped = {r["account"]: r["reason"] for r in records(cli.workdir) if r["event"] == "skipped" and r.get("escalation_of")}
    assert skipped == {"acme": "no reachable recipient on whatsapp (opted out meanwhile?)", "beta": "hold: negotiating"}
