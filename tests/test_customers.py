"""`notifier opt-out`: a customer's own opt-out, kept across imports (issue 9, point 8)."""
from __future__ import annotations

import json

import pytest

from test_cli import BILLING


@pytest.fixture
def imported(cli, tmp_path):
    (tmp_path / "billing.json").write_text(json.dumps(BILLING, ensure_ascii=False), encoding="utf-8")
    cli("import", "billing.json", "--date", "2026-11-10")
    return cli


def channels_planned(cli, day="2026-11-24"):
    return sorted({n["channel"] for n in cli.json("plan", "--date", day) if n["account"] == "acme"})


def test_an_opt_out_stops_the_channel_survives_reimport_and_is_shown(imported, tmp_path):
    assert "whatsapp" in channels_planned(imported)
    out = imported("opt-out", "acme", "--channel", "whatsapp", "--channel", "sms", "--by", "Ana",
                   "--date", "2026-11-20").stdout
    assert "acme: no more whatsapp and sms (recorded by Ana on 20/11/2026)" in out
    assert "whatsapp" not in channels_planned(imported) and "email" in channels_planned(imported)
    imported("import", "billing.json", "--date", "2026-11-21")  # the billing system knows nothing of it
    assert "whatsapp" not in channels_planned(imported)
    shown = imported.json("show", "acme")
    assert {"whatsapp", "sms"} <= set(shown["opt_out"])
    assert "whatsapp" in imported("show", "acme").stdout
    [record, *_] = [json.loads(line) for line in (tmp_path / "attempts.jsonl").read_text().splitlines()]
    assert (record["event"], record["actor"], record["account"], record["channel"]) == ("opt_out", "Ana", "acme", "whatsapp")


def test_an_opt_out_of_an_unknown_account_or_of_email_is_refused(imported):
    proc = imported("opt-out", "nobody", "--channel", "whatsapp", "--by", "Ana", check=False)
    assert proc.returncode == 1 and "unknown account 'nobody'" in proc.stderr and "Traceback" not in proc.stderr
    proc = imported("opt-out", "acme", "--channel", "email", "--by", "Ana", check=False)
    assert proc.returncode == 2 and "email" in proc.stderr  # the contractual channel


def test_stop_replies_name_the_channel_the_customer_said_stop_on():
    from notifier.channels import FAILED, Result
    from notifier.run.delivery import Delivery
    from notifier.staff.optout import stop_replies

    def delivery(channel, code, evidence=None):
        notice = type("N", (), {"account": "acme", "channel": channel})()
        return Delivery(notice, None, "a1", Result(FAILED, "twilio", code=code, permanent=True, evidence=evidence or {}))
    assert stop_replies([delivery("sms", "21610"), delivery("whatsapp", "21211"),
                         delivery("whatsapp", "21610", {"fallback": "sms"}), delivery("sms", "21610")]) == [("acme", "sms")]
    assert stop_replies([delivery("whatsapp", "21610")]) == [("acme", "whatsapp")]


def test_check_names_the_whatsapp_stages_without_an_approved_template(cli, tmp_path):
    def missing(*args):
        err = cli(*args, "check", check=False).stderr
        return [stage for stage in ("overdue", "suspension_warning")
                if f"no approved Content template for stage {stage}" in err
                and f"docs/whatsapp-templates/{stage}.json" in err]
    assert missing() == ["overdue", "suspension_warning"]
    (tmp_path / "n.toml").write_text(
        '[channels.whatsapp.templates.overdue]\ncontent_sid = "HX' + "0" * 32 + '"\n'
        'variables = { "1" = "{{ customer }}" }\n', encoding="utf-8")
    assert missing("--config", "n.toml") == ["suspension_warning"]
