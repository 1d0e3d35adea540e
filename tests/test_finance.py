"""Finance's commands over a real log: `attempts` (table, CSV for Excel in Portuguese, JSON
Lines, filters) and `audit` (HTML opened in a real headless Chromium, and PDF)."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import tempfile

import pytest

from notifier.reports.pdf import find_browser, headless
from tests.conftest import clean_cli
from tests.smtp_server import SmtpServer

BILLING = {
    "accounts": [
        {"id": "acme", "company": "ACME Comércio <script>alert(1)</script> Ltda", "contact_name": "Maria Souza",
         "document": "45.723.174/0001-10", "emails": ["financeiro@acme.com.br", "maria@acme.com.br"],
         "whatsapp": "+5511987654321", "due_day": 20},
        {"id": "beta", "company": "Beta Serviços Ltda", "document": "12.ABC.345/01DE-35",
         "emails": ["contas@beta.com.br"]},
    ],
    "invoices": [
        {"id": "2026-11-acme", "account": "acme", "amount": "1234.56", "issued": "2026-11-05"},
        {"id": "2026-11-beta", "account": "beta", "amount": "99.90", "issued": "2026-11-05"},
    ],
}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """Two accounts, e-mails sent to a real SMTP server and a WhatsApp attempt (blocked: no approved
    template, our configuration) with its staff alert (to the outbox: no staff URL), in the log."""
    cli = clean_cli(tmp_path_factory.mktemp("finance"))
    (cli.workdir / "billing.json").write_text(json.dumps(BILLING, ensure_ascii=False), encoding="utf-8")
    cli("import", "billing.json", "--date", "2026-11-10")
    with SmtpServer() as smtp:
        email = {"EMAIL_URL": smtp.url()}
        cli("send", "acme", "--channel", "email", "--stage", "overdue", "--date", "2026-11-24", env=email)
        cli("send", "acme", "--channel", "whatsapp", "--stage", "overdue", "--date", "2026-11-24", check=False)
        cli("send", "beta", "--channel", "email", "--stage", "reminder", "--date", "2026-11-17", env=email)
    cli("import", "billing.json", "--date", "2026-11-24")
    return cli


def test_attempts_json_lines_one_per_attempt_with_its_latest_status(logged):
    lines = logged("attempts", "--format", "json").stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["account"], r["channel"], r["status"]) for r in rows] == [
        ("acme", "email", "sent"), ("acme", "email", "sent"), ("acme", "whatsapp", "blocked"),
        ("", "staff", "outbox"), ("beta", "email", "sent")]  # the alert speaks of a setting, not an account
    assert rows[0]["provider"] == "smtp" and rows[0]["message_id"].startswith("<")


def test_attempts_filters(logged):
    def ids(*args):
        return [json.loads(x)["recipient"] for x in logged("attempts", "--format", "json", *args).stdout.splitlines()]
    assert ids("--account", "beta") == ["contas@beta.com.br"]
    assert ids("--invoice", "2026-11-beta") == ["contas@beta.com.br"]
    assert ids("--channel", "whatsapp") == ["+5511987654321"]
    assert ids("--status", "blocked") == ["+5511987654321"] and ids("--status", "failed") == []
    assert ids("--account", "acme", "--channel", "email") == ["financeiro@acme.com.br", "maria@acme.com.br"]
    assert ids("--actor", "nobody") == []
    assert ids("--until", "2000-01-01") == [] and len(ids("--since", "2000-01-01")) == 5


def test_attempts_csv_opens_in_excel_set_to_portuguese(logged, tmp_path):
    out = tmp_path / "tentativas.csv"
    logged("attempts", "--account", "acme", "--format", "csv", "--output", str(out))
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel then reads "Comércio" right
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows[0][:7] == ["Data/hora", "Conta", "Faturas", "Etapa", "Canal", "Destinatário", "Status"]
    assert len(rows) == 4 and all(len(r) == len(rows[0]) for r in rows)
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", rows[1][0])
    assert rows[1][3] == "Em atraso" and rows[1][4] == "E-mail" and rows[1][6] == "enviado"
    assert b"\r\n" in data


def test_attempts_table_streams_fixed_columns(logged):
    out = logged("attempts", "--account", "acme").stdout.splitlines()
    assert out[0].startswith("when (São Paulo)") and len(out) == 2 + 3
    assert "blocked" in out[4] and "whatsapp" in out[4]


def test_audit_html_in_a_real_chromium_and_pdf(logged, tmp_path):
    html, pdf = tmp_path / "auditoria.html", tmp_path / "auditoria.pdf"
    out = logged("audit", "acme", "--html", str(html), "--pdf", str(pdf)).stdout
    assert "3 attempt(s) in 3 line(s); log verified" in out  # the staff alert is not a contact
    text = html.read_text(encoding="utf-8")
    # Self-contained: nothing fetched from anywhere; the customer's name escaped.
    assert not re.search(r"""src\s*=\s*["']?(https?:|//)""", text) and "<link" not in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert pdf.read_bytes().startswith(b"%PDF-")

    browser = find_browser()
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(headless(browser, profile) + ["--dump-dom", html.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
    with tempfile.TemporaryDirectory() as profile:
        shot = tmp_path / "auditoria.png"
        subprocess.run(headless(browser, profile) + [f"--screenshot={shot}", "--window-size=1000,2400", html.as_uri()],
                       capture_output=True, timeout=120)
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert "Relatório de contatos de cobrança" in dom and "Lucanet Hospedagem de Sites Ltda" in dom
    assert "11.222.333/0001-81" in dom  # CDC art. 42-A: who is collecting
    assert "45.723.174/0001-10" in dom and "R$&nbsp;1.234,56" in dom
    assert dom.count("data-attempt=") == 3
    assert "financeiro@acme.com.br" in dom and "maria@acme.com.br" in dom and "+5511987654321" in dom
    # The fixture's e-mails went to a real (local) SMTP server: accepted, so their text is shown.
    assert "aceito pelo servidor de e-mail" in dom and "Nenhuma mensagem foi entregue ao cliente" not in dom
    assert "Registro íntegro" in dom
    assert "<script>alert(1)</script>" not in dom  # the browser did not find a script to run


def test_audit_of_an_unknown_account(logged, tmp_path):
    proc = logged("audit", "ghost", "--html", str(tmp_path / "x.html"), check=False)
    assert proc.returncode == 1 and "ghost" in proc.stderr and not (tmp_path / "x.html").exists()


def test_report_counts_per_stage_and_channel_and_who_paid_within_three_days(logged, tmp_path):
    logged("pay", "2026-11-beta", "--date", "2026-11-20")  # 3 days after its reminder of 17/11
    rows = {(r["stage"], r["channel"]): r for r in map(json.loads, logged(
        "report", "--month", "2026-11", "--format", "json").stdout.splitlines())}
    assert set(rows) == {("reminder", "email"), ("overdue", "email"), ("overdue", "whatsapp")}  # no staff
    reminder, overdue, whatsapp = rows["reminder", "email"], rows["overdue", "email"], rows["overdue", "whatsapp"]
    assert (reminder["attempts"], reminder["sent"], reminder["accounts"], reminder["paid_within_window"],
            reminder["recovery_rate"], reminder["recovered"]) == (1, 1, 1, 1, 1.0, "99.90")
    assert (overdue["attempts"], overdue["sent"], overdue["paid_within_window"], overdue["recovered"]) == (2, 2, 0, "0")
    assert (whatsapp["failed"], whatsapp["blocked"], whatsapp["accounts"]) == (0, 1, 0)  # our configuration, reached nobody
    for r in rows.values():  # every attempt in exactly one column (issue 20, point 7)
        assert r["attempts"] == r["sent"] + r["failed"] + r["blocked"] + r["task"] + r["other"], r
    narrow = logged("report", "--month", "2026-11", "--format", "json", "--window", "2").stdout
    assert '"recovered":"99.90"' not in narrow

    csv_text = logged("report", "--month", "2026-11", "--format", "csv").stdout
    assert csv_text.startswith("\ufeffEtapa;Canal;Tentativas;Enviadas;Falhas;Bloqueadas;Tarefas;Outras;")
    assert "Lembrete;E-mail;1;1;0;0;0;0;0;0;0;1;1;100,00;99,90" in csv_text
    assert "Em atraso;WhatsApp;1;0;0;1;0;0;0;0;0;0;0;0,00;0,00" in csv_text

    html = tmp_path / "relatorio.html"
    logged("report", "--month", "2026-11", "--html", str(html))
    text = html.read_text(encoding="utf-8")
    assert "<svg" in text and "novembro de 2026" in text and "100,0%" in text and "R$\xa099,90" in text
    assert "Valor recuperado no mês: <strong>R$\xa099,90</strong>" in text
    assert "<th>Bloqueadas</th><th>Tarefas</th>" in text
    assert re.search(r'<tr class="sum"><td>Total</td><td></td><td>4</td><td>3</td><td>0</td><td>1</td>', text)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert logged("report", "--month", "2026-13", check=False).returncode == 2


def test_an_output_file_that_cannot_be_written_is_a_clear_error(logged, tmp_path):
    for args in (["attempts", "-o", str(tmp_path / "no-such-folder" / "a.csv")],
                 ["report", "--month", "2026-11", "--html", str(tmp_path / "no-such-folder" / "r.html")],
                 ["audit", "acme", "--html", str(tmp_path / "no-such-folder" / "a.html")]):
        proc = logged(*args, check=False)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "no-such-folder" in proc.stderr and "cannot write: No such file or directory" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    for args in (["attempts", "-o", ""], ["report", "--month", "2026-11", "--html", str(tmp_path)]):
        proc = logged(*args, check=False)
        assert proc.returncode == 2 and "Invalid value" in proc.stderr, (args, proc.stderr)
