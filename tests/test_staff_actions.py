"""Staff actions (issue 18, points 2-5): who acts (`Actor`), what staff may type, holds that do
not replace each other, escalations that wait for contact hours, payments in the log. Real
subprocesses, a real store and log."""
from __future__ import annotations

import re
from datetime import datetime

import pytest

from notifier.config import load_config
from notifier.log.attempts import AttemptLog
from notifier.staff.actor import Actor, InvalidText, check_note
from notifier.state.store import Store
from tests.cycle_helpers import CONFIG, account, records, setup

DAY = "2026-11-24"


def library(cli):
    """The state, log and config of `cli`'s folder, as the web console would open them."""
    config = load_config(cli.workdir / "notifier.toml", {}, cli.workdir / "state.json")
    log = AttemptLog(config.attempt_log)
    return Store(config.state, log_head=log.head), log, config


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
