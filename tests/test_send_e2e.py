"""`notifier send` end to end: the CLI in a subprocess against real local providers.

An aiosmtpd server receives the e-mails, a local HTTP server speaks Twilio's Messages API, and a
local JSON sink stands in for an automatic social network and for the staff channel (apprise's
`json://`). What arrived is checked against the contact-attempt log.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fake_twilio import FakeTwilio
from tests.json_sink import JsonSink
from tests.smtp_server import SmtpServer

CONFIG = """
[channels.whatsapp]
freeform = false
[channels.whatsapp.templates.overdue]
content_sid = "HX0123456789abcdef0123456789abcdef"
variables = { "1" = "{{ customer }}", "2" = "{{ total }}", "3" = "{{ tutorial_url }}" }
[channels.whatsapp.templates.suspension_warning]
content_sid = "HX1123456789abcdef0123456789abcdef"
variables = { "1" = "{{ customer }}", "2" = "{{ dates.suspension }}" }
[channels.social]
send = true
schemes = ["json"]  # the local sink stands in for an automatic network
"""


@pytest.fixture
def providers(cli, tmp_path):
    with SmtpServer() as smtp, FakeTwilio() as twilio, JsonSink() as sink:
        billing = {
            "accounts": [
                {"id": "acme", "company": "ACME Comércio <script>alert(1)</script> Ltda", "contact_name": "Maria Souza",
                 "document": "45.723.174/0001-10", "domain": "acme.com.br",
                 "emails": ["financeiro@acme.com.br", "maria@acme.com.br"], "whatsapp": "+5511987654321",
                 "social": {"telegram": sink.url("/social")}},
                {"id": "beta", "company": "Beta Serviços Ltda", "document": "12.ABC.345/01DE-35",
                 "emails": ["contas@beta.com.br"], "whatsapp": "+5521998765432"},
            ],
            "invoices": [
                {"id": "2026-11-acme", "account": "acme", "amount": "1234.56", "issued": "2026-11-05",
                 "pix_code": "00020101021226900014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913ACME6009SAO PAULO62070503***630408BF"},
                {"id": "2026-11-beta", "account": "beta", "amount": "99.90", "issued": "2026-11-05"},
            ],
        }
        (tmp_path / "billing.json").write_text(json.dumps(billing, ensure_ascii=False), encoding="utf-8")
        (tmp_path / "notifier.toml").write_text(CONFIG, encoding="utf-8")
        cli("import", "billing.json", "--date", "2026-11-10")
        cli.env.update(twilio.env(), EMAIL_URL=smtp.url(), STAFF_URLS=sink.url("/staff"),
                       TUTORIAL_URL="https://www.lucanet.com.br/cobranca", NOTIFIER_CONFIG="notifier.toml")
        yield smtp, twilio, sink


def attempts(tmp_path) -> list[dict]:
    lines = (tmp_path / "attempts.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    results = {r["ref"]: {**r, "status": r["event"]} for r in records if r["event"] != "sending"}
    return [{**r, "result": results[r["id"]]} for r in records if r["event"] == "sending"]


def test_email_reaches_the_smtp_server_and_the_log_proves_it(cli, providers, tmp_path):
    smtp, _, _ = providers
    out = cli("send", "acme", "--channel", "email", "--date", "2026-11-24").stdout
    assert out.count("sent via smtp") == 2
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["financeiro@acme.com.br", "maria@acme.com.br"]
    logged = {a["recipient"]: a for a in attempts(tmp_path)}
    for received in smtp.received:
        msg = received.message
        attempt = logged[received.rcpt_tos[0]]
        assert attempt["stage"] == "overdue" and attempt["notice_date"] == "2026-11-24"
        assert attempt["result"]["evidence"]["message_id"] == msg["Message-ID"]
        assert attempt["result"]["provider_id"] in attempt["result"]["evidence"]["smtp_reply"]
        assert msg["Reply-To"] == "financeiro@lucanet.com.br"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "1.234,56" in text and "20/11/2026" in text and "45.723.174/0001-10" in text
        assert "<script>alert(1)</script>" in text  # plain text keeps the name as it is
        assert "<script>" not in html and "&lt;script&gt;" in html  # HTML escapes it


def test_whatsapp_goes_as_the_approved_template_and_social_through_apprise(cli, providers, tmp_path):
    _, twilio, sink = providers
    cli("send", "acme", "--channel", "whatsapp", "--date", "2026-11-24")
    [form] = twilio.forms
    assert form["To"] == "whatsapp:+5511987654321" and form["From"] == "whatsapp:+14155238886"
    assert form["ContentSid"] == "HX0123456789abcdef0123456789abcdef"
    variables = json.loads(form["ContentVariables"])
    assert variables == {"1": "Maria Souza", "2": "R$ 1.234,56", "3": "https://www.lucanet.com.br/cobranca"}
    cli("send", "acme", "--channel", "social", "--date", "2026-11-24")
    [post] = sink.posts_to("/social")
    assert "acme.com.br" in post.json["message"]  # short and neutral: no amount, no document
    assert "1.234,56" not in post.json["message"] and "45.723.174/0001-10" not in post.json["message"]
    [whatsapp, social] = attempts(tmp_path)
    assert whatsapp["result"]["provider"] == "twilio" and whatsapp["result"]["provider_id"].startswith("SM")
    assert social["recipient"] == "telegram" and social["result"]["status"] == "sent"


def test_permanent_failure_is_logged_and_alerts_staff(cli, providers, tmp_path):
    _, twilio, sink = providers
    twilio.fail("whatsapp:+5521998765432", 400, 21610, "Attempt to send to unsubscribed recipient")
    proc = cli("send", "beta", "--channel", "whatsapp", "--stage", "overdue", "--date", "2026-11-24", check=False)
    assert proc.returncode == 1 and "failed" in proc.stdout and "21610" in proc.stdout
    [alert] = sink.posts_to("/staff")
    body = alert.json
    assert "Contato inválido" in body["title"] and "21610" in body["message"] and "Beta Serviços" in body["message"]
    # The customer said STOP: recorded as an opt-out (notifier/staff/optout.py), shown by `show`.
    assert "beta: opted out of whatsapp (the customer replied STOP)" in proc.stdout
    assert "whatsapp" in cli.json("show", "beta")["opt_out"]
    failed, staff = attempts(tmp_path)
    assert (failed["result"]["status"], failed["result"]["code"], failed["result"]["permanent"]) == ("failed", "21610", True)
    assert staff["channel"] == "staff" and staff["result"]["status"] == "sent"


def test_check_connect_reaches_every_provider_without_sending(cli, providers):
    smtp, twilio, sink = providers
    out = cli("check", "--connect").stdout
    assert "templates: ok" in out
    assert smtp.received == [] and twilio.posts == [] and sink.posts == []


# --- issue 6: the sandbox, statuses, our configuration problems, --to, write errors ------------

ACME = {"id": "acme", "company": "ACME Comércio Ltda", "contact_name": "Maria Souza",
        "document": "45.723.174/0001-10", "emails": ["financeiro@acme.com.br", "maria@acme.com.br"],
        "whatsapp": "+5511987654321"}
INVOICE = {"id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05"}
DAY = ("--date", "2026-11-24")  # acme's invoice is overdue, first time: e-mail, WhatsApp, social


def import_acme(cli, tmp_path, **changes):
    billing = {"accounts": [{**ACME, **changes}], "invoices": [INVOICE]}
    (tmp_path / "billing.json").write_text(json.dumps(billing, ensure_ascii=False), encoding="utf-8")
    cli("import", "billing.json", "--date", "2026-11-10")


def log_records(tmp_path) -> list[dict]:
    path = tmp_path / "attempts.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def outcomes(tmp_path) -> list[str]:
    from notifier.log.attempts import OUTCOMES
    return [r["event"] for r in log_records(tmp_path) if r["event"] in OUTCOMES]


def test_a_staff_task_is_logged_and_shown_as_task_not_sent(cli, tmp_path):
    import_acme(cli, tmp_path, social={"instagram": "@acme"})
    out = cli("send", "acme", "--channel", "social", *DAY).stdout
    assert out.strip() == f"social → instagram:@acme: task via staff-task ({next((tmp_path / 'outbox' / 'staff').iterdir()).name})"
    assert outcomes(tmp_path) == ["task"]


def test_with_nothing_configured_a_social_url_handle_reaches_only_the_outbox(cli, tmp_path):
    with JsonSink() as sink:
        (tmp_path / "n.toml").write_text('[channels.social]\nschemes = ["json"]\n', encoding="utf-8")
        import_acme(cli, tmp_path, social={"telegram": sink.url("/dm")})
        out = cli("--config", "n.toml", "send", "acme", "--channel", "social", *DAY).stdout
        assert sink.posts == []
    assert "not sent, written to the local outbox" in out and len(list((tmp_path / "outbox" / "social").glob("*.json"))) == 1
    check = cli("--config", "n.toml", "check", check=False).stdout
    assert "social: ok, outbox:" in check and "send = false" in check


def test_billing_data_cannot_make_the_notifier_post_to_an_internal_url(cli, tmp_path):
    with JsonSink() as sink:
        import_acme(cli, tmp_path, social={"telegram": sink.url("/internal-admin")})
        env = {"STAFF_URLS": sink.url("/staff")}
        (tmp_path / "n.toml").write_text("[channels.social]\nsend = true\n", encoding="utf-8")
        proc = cli("--config", "n.toml", "send", "acme", "--channel", "social", *DAY, env=env, check=False)
        assert sink.posts_to("/internal-admin") == []
        [alert] = sink.posts_to("/staff")  # the record must be fixed: a person is told
    assert proc.returncode == 1 and "scheme_not_allowed" in proc.stdout and "Traceback" not in proc.stderr
    assert "Falha permanente" in alert.json["title"]


def channel_lines(check_output: str) -> dict[str, str]:
    """`notifier check`'s line for each channel: "NAME: ok, live|outbox: where"."""
    lines = [line.strip().split(": ", 1) for line in check_output.splitlines()]
    return {line[0]: line[1] for line in lines if len(line) == 2 and line[0] in ("email", "whatsapp", "sms", "social", "staff")}


def test_check_says_per_channel_that_it_is_live_and_where(cli, providers):
    smtp, twilio, sink = providers
    lines = channel_lines(cli("check").stdout)
    assert lines["email"] == f"ok, live: smtp://127.0.0.1:{smtp.port}/?from=Lucanet Cobrança <cobranca@lucanet.com.br>"
    assert lines["whatsapp"].startswith("ok, live: Twilio account") and twilio.url in lines["whatsapp"]
    assert lines["sms"].startswith("ok, live: Twilio account")
    assert lines["social"].startswith("ok, live: URL handles (json) through apprise")
    assert lines["staff"].startswith(f"ok, live: json://127.0.0.1:{sink.port}/staff")


CHILD_CHECK = """
import json, os, sys
from pathlib import Path
from notifier.config import load_config
from notifier.run.checkup import channel_statuses_apart
config = load_config(Path(os.environ["NOTIFIER_CONFIG"]), dict(os.environ), Path("state.json"))
statuses = channel_statuses_apart(config)
print(json.dumps({"apprise_here": "apprise" in sys.modules,
                  "lines": {s.name: ("ok" if not s.problems else "problems") + (", live" if s.live else ", outbox") + ": " + s.where
                            for s in statuses}}))
"""


def test_the_console_checks_the_channels_in_a_child_process_as_check_does(cli, providers):
    """The Painel's and Configuração's channel statuses come from a short-lived child process
    (`channel_statuses_apart`): checking an apprise URL loads every apprise plugin, 15 to 20 MB
    that the console would hold for hours. The same lines as `check`, and no apprise here."""
    expected = channel_lines(cli("check").stdout)
    proc = subprocess.run([sys.executable, "-c", CHILD_CHECK], cwd=cli.workdir, env=cli.env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["lines"] == expected and found["lines"]["social"].startswith("ok, live: URL handles (json) through apprise")
    assert found["apprise_here"] is False


def test_with_nothing_configured_check_says_every_channel_writes_to_the_outbox(cli):
    lines = channel_lines(cli("check", check=False).stdout)
    assert sorted(lines) == ["email", "sms", "social", "staff", "whatsapp"]
    for name, line in lines.items():
        assert line.split(": ", 1)[0].endswith(", outbox") and f"outbox/{name}" in line, line


def test_a_whatsapp_stage_without_template_is_our_problem_told_once_not_the_customers(cli, tmp_path):
    with FakeTwilio() as twilio, JsonSink() as sink:
        import_acme(cli, tmp_path)
        env = {**twilio.env(), "STAFF_URLS": sink.url("/staff")}
        check = cli("check", env=env, check=False)
        assert check.returncode == 1 and "problem: whatsapp: channels.whatsapp.templates.overdue:" in check.stderr
        proc = cli("send", "acme", "--channel", "whatsapp", *DAY, env=env, check=False)
        assert twilio.posts == []
        [alert] = sink.posts_to("/staff")
    assert proc.returncode == 1
    assert "whatsapp → +5511987654321: blocked via twilio config:whatsapp.templates.overdue" in proc.stdout
    assert "Falha permanente" not in alert.json["title"] and "config:whatsapp.templates.overdue" in alert.json["title"]
    assert "content_sid" in alert.json["message"] and "acme" in alert.json["message"]
    assert outcomes(tmp_path) == ["blocked", "sent"]


def test_config_alerts_give_one_alert_per_problem_not_per_message():
    from datetime import date

    from notifier.channels import BLOCKED, FAILED, Message, Result
    from notifier.run.delivery import Delivery, config_alerts
    from notifier.billing.models import Notice

    def delivery(account, code, status=BLOCKED, channel="whatsapp"):
        notice = Notice(account=account, date=date(2026, 11, 24), stage="overdue", channel=channel,
                        recipient="+5511987654321", invoices=("i",), first_time=True, tutorial=True)
        message = Message(channel=channel, recipient=notice.recipient, text="x")
        return Delivery(notice, message, "id", Result(status, "twilio", code=code, detail=f"fix {code}"))

    deliveries = [delivery("a", "config:whatsapp.templates.overdue"), delivery("b", "config:whatsapp.templates.overdue"),
                  delivery("c", "config:sms"), delivery("d", "21211", FAILED),
                  delivery("e", "config:staff", channel="staff")]
    alerts = config_alerts(deliveries, date(2026, 11, 24))
    assert [m.meta["code"] for _, m in alerts] == ["config:whatsapp.templates.overdue", "config:sms", "config:staff"]
    notice, message = alerts[0]
    assert notice.channel == "staff" and "2 mensagens de whatsapp" in message.text and "a, b" in message.text
    assert "fix config:whatsapp.templates.overdue" in message.text
    # what was told earlier the same day is not told again
    again = config_alerts(deliveries, date(2026, 11, 24), already={"config:sms", "config:staff"})
    assert [m.meta["code"] for _, m in again] == ["config:whatsapp.templates.overdue"]


def test_a_problem_of_the_whatsapp_templates_does_not_stop_the_email(cli, providers, tmp_path):
    smtp, twilio, _ = providers
    env = {"TUTORIAL_URL": ""}  # the WhatsApp template's variable 3 needs it
    proc = cli("send", "acme", "--channel", "email", *DAY, env=env)
    assert proc.stdout.count("sent via smtp") == 2 and len(smtp.received) == 2
    blocked = cli("send", "acme", "--channel", "whatsapp", *DAY, env=env, check=False)
    assert blocked.returncode == 1 and "blocked via notifier" in blocked.stdout and "TUTORIAL_URL" in blocked.stdout
    assert twilio.posts == []
    check = cli("check", env=env, check=False)
    assert check.returncode == 1 and "TUTORIAL_URL" in check.stderr


def test_send_to_means_one_message_to_that_recipient(cli, providers, tmp_path):
    smtp, _, sink = providers
    out = cli("send", "acme", "--channel", "email", *DAY, "--to", "outsider@example.com").stdout
    assert out.count("sent via smtp") == 1
    assert [r.rcpt_tos for r in smtp.received] == [["outsider@example.com"]]
    # An address the operator typed is not the customer's record: refused, it raises no alert.
    smtp.handler.rcpt_replies["outsider@exemplo.com.br"] = "550 5.1.1 <outsider@exemplo.com.br>: User unknown"
    refused = cli("send", "acme", "--channel", "email", *DAY, "--to", "outsider@exemplo.com.br", check=False)
    assert refused.returncode == 1 and refused.stdout.count("failed via smtp [permanent] 550") == 1
    assert sink.posts_to("/staff") == [] and outcomes(tmp_path) == ["sent", "failed"]


@pytest.mark.parametrize("channel, to, says", [
    ("email", "", "--to is empty"),
    ("email", "   ", "--to is empty"),
    ("email", "outsider@example", "not a valid e-mail address"),
    ("whatsapp", "11987654321", "E.164"),
    ("sms", "outsider@example.com", "E.164"),
    ("social", "tgram://token/chat", "network:handle"),
])
def test_a_bad_or_empty_send_to_is_refused_before_anything_is_sent(cli, providers, tmp_path, channel, to, says):
    smtp, twilio, sink = providers
    proc = cli("send", "acme", "--channel", channel, *DAY, "--to", to, check=False)
    assert proc.returncode == 1 and says in proc.stderr and "Traceback" not in proc.stderr
    assert smtp.received == [] and twilio.posts == [] and sink.posts == []
    assert not (tmp_path / "attempts.jsonl").exists()


def test_an_address_only_smtputf8_can_carry_fails_alone_and_the_next_goes(cli, providers, tmp_path):
    smtp, _, sink = providers  # this server does not offer SMTPUTF8
    billing = {"accounts": [{**ACME, "id": "joao", "emails": ["joão@exemplo.com.br", "maria@exemplo.com.br"]}],
               "invoices": [{**INVOICE, "id": "2026-11-joao", "account": "joao"}]}
    (tmp_path / "joao.json").write_text(json.dumps(billing, ensure_ascii=False), encoding="utf-8")
    cli("import", "joao.json", "--date", "2026-11-10")
    proc = cli("send", "joao", "--channel", "email", *DAY, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "email → joão@exemplo.com.br: failed via smtp [permanent] smtputf8_unsupported" in proc.stdout
    assert [r.rcpt_tos for r in smtp.received] == [["maria@exemplo.com.br"]]
    assert outcomes(tmp_path) == ["failed", "sent", "sent"]  # the second "sent" is the staff alert
    [alert] = sink.posts_to("/staff")
    assert "SMTPUTF8" in alert.json["message"]


def test_check_connect_reaches_the_smtp_server_and_plain_check_does_not(cli, tmp_path):
    import socket
    (tmp_path / "n.toml").write_text("[channels.whatsapp]\nfreeform = true\n", encoding="utf-8")
    with socket.socket() as sock:  # bound, not listening: connecting is refused
        sock.bind(("127.0.0.1", 0))
        env = {"EMAIL_URL": f"smtp://127.0.0.1:{sock.getsockname()[1]}/?from=cobranca@lucanet.com.br"}
        plain = cli("--config", "n.toml", "check", env=env, check=False)
        connect = cli("--config", "n.toml", "check", "--connect", env=env, check=False)
    assert plain.returncode == 0, plain.stderr
    assert connect.returncode == 1 and "problem: email: EMAIL_URL: cannot connect to 127.0.0.1:" in connect.stderr


def test_check_reports_a_company_cnpj_with_wrong_check_digits(cli, tmp_path):
    (tmp_path / "n.toml").write_text('[channels.whatsapp]\nfreeform = true\n[company]\ncnpj = "11.222.333/0001-82"\n',
                                     encoding="utf-8")
    proc = cli("--config", "n.toml", "check", check=False)
    assert proc.returncode == 1 and "company.cnpj: not a valid CNPJ (check digits do not match)" in proc.stderr


def test_a_channel_named_in_its_own_problem_is_not_named_twice(cli, tmp_path):
    proc = cli("check", env={"TWILIO_ACCOUNT_SID": "AC" + "0" * 32}, check=False)
    assert "problem: whatsapp: TWILIO_AUTH_TOKEN" in proc.stderr and "whatsapp: whatsapp:" not in proc.stderr


SECRET = "Sm7pS3cr3t"


@pytest.mark.parametrize("url", [
    f"smtp://cobranca@lucanet.com.br:{SECRET}/P@ss#w0rd!@127.0.0.1:34191/?from=cobranca@lucanet.com.br",
    f"smtp://cobranca:{SECRET}@[::1/?from=cobranca@lucanet.com.br",
    f"smtp://cobranca:{SECRET}@mail..lucanet.com.br:99999/?from=cobranca@lucanet.com.br",
    "smtp://[::1",
])
def test_check_and_send_never_echo_the_login_of_a_url_that_does_not_parse(cli, tmp_path, url):
    import_acme(cli, tmp_path)
    check = cli("check", env={"EMAIL_URL": url}, check=False)
    send = cli("send", "acme", "--channel", "email", *DAY, env={"EMAIL_URL": url}, check=False)
    everything = check.stdout + check.stderr + send.stdout + send.stderr + (tmp_path / "attempts.jsonl").read_text()
    assert SECRET not in everything and "cobranca:" not in everything and "Traceback" not in everything
    assert check.returncode == 1 and "problem: email: EMAIL_URL:" in check.stderr
    assert send.returncode == 1 and "blocked via email config:email" in send.stdout


def test_an_outbox_that_cannot_be_written_fails_each_message_and_tries_the_next(cli, tmp_path):
    import_acme(cli, tmp_path)
    (tmp_path / "outbox").write_text("not a folder\n", encoding="utf-8")
    proc = cli("send", "acme", "--channel", "email", *DAY, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stdout.count("failed via outbox [temporary] outbox_write: cannot write to the outbox") == 2
    assert outcomes(tmp_path) == ["failed", "failed"]


def test_a_write_error_in_the_outbox_leaves_no_temporary_file_and_the_next_message_is_tried(cli, tmp_path):
    # A full disk, made real by the kernel: the outbox folder is a 4 KiB tmpfs, mounted in a mount
    # namespace of the command's own (nothing outside sees it). An e-mail (~7 KiB) does not fit
    # (ENOSPC); the attempt log and its message store, on the real disk, take every record.
    import shutil
    import subprocess
    import sys

    from tests.conftest import ROOT
    import_acme(cli, tmp_path)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    # After the command, what the full folder holds is listed (on stderr): no .eml, no .eml.tmp.
    script = 'mount -t tmpfs -o size=4k tmpfs "$1" && mkdir "$1/email" || exit 9; dir=$1; shift; "$@"; rc=$?; ' \
             'echo "left: $(ls -A "$dir/email")" >&2; exit $rc'
    proc = subprocess.run([shutil.which("unshare"), "--mount", "sh", "-c", script, "sh", str(outbox),
                           sys.executable, str(ROOT / "run.py"), "send", "acme", "--channel", "email", *DAY],
                          cwd=tmp_path, env=cli.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.count("cannot write to the outbox") == 2 and "No space left on device" in proc.stdout
    assert outcomes(tmp_path) == ["failed", "failed"]
    assert proc.stderr.splitlines()[-1] == "left: "


def test_an_attempt_log_that_cannot_be_written_stops_the_send_in_one_line(cli, tmp_path):
    import_acme(cli, tmp_path)
    (tmp_path / "attempts.jsonl").mkdir()
    proc = cli("send", "acme", "--channel", "email", *DAY, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line == "Error: attempts.jsonl: is a folder, not the attempt log (check `attempt_log` in the config)"
    assert not (tmp_path / "outbox" / "email").exists()  # nothing goes out without its log record
