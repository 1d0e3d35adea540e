"""Finance's Auditoria and Relatórios pages (issue 21): a real `notifier web` process, a real Chromium
(Playwright) or plain HTTP, the real CLI on the same state; and the console's chain check on a
real log. Fixtures: tests/web_helpers.py."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import zipfile
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson
from playwright.sync_api import expect

from notifier.log.attempts import AttemptLog
from notifier.log.verified import ChainCheck
from notifier.reports.exports import CHANNEL_LABELS, STAGE_LABELS
from tests.smtp_server import SmtpServer
from tests.web_helpers import http, http_login, login, shoot

SP = ZoneInfo("America/Sao_Paulo")
ACCOUNT = "padaria-sao-joao"
HEAD = re.compile(r"(\d+):([0-9a-f]{64})")


def _brl(value: str) -> str:
    """"1234.5" as a person reads it here: R$ 1.234,50 (a no-break space after R$)."""
    whole, cents = f"{float(value):.2f}".split(".")
    return f"R$\xa0{int(whole):,}".replace(",", ".") + f",{cents}"


def test_finance_audits_a_customer_for_a_period_and_reads_the_months_report(console, browser, tmp_path):
    with SmtpServer() as smtp:  # the e-mails reach a (local) mail server: they count as reaching the customer
        console.cli("run-once", "--date", "2026-11-24", env={"EMAIL_URL": smtp.url()})
    page = browser.new_page()
    login(page, console, "caio")
    menu = page.locator("nav.menu a").all_inner_texts()
    assert "Auditoria" in menu and "Relatórios" in menu

    # A payment the day of the notice: the month's report counts it as recovered.
    page.goto(f"{console.url}/clientes/{ACCOUNT}")
    page.click("text=Registrar pagamento")
    page.select_option("form[action$='/pagamento'] select[name=fatura]", f"2026-11-{ACCOUNT}")
    page.fill("form[action$='/pagamento'] input[name=pago_em]", "2026-11-24")
    page.click("form[action$='/pagamento'] button[type=submit]")
    assert "registrado em 24/11/2026" in page.locator("p.ok").inner_text()

    # Auditoria, from the customer page; the whole history first, then a period.
    page.click("text=Relatório de auditoria")
    assert page.url.endswith(f"/auditoria?conta={ACCOUNT}")
    assert "todo o histórico" in page.locator(".periodo-dito").inner_text()
    page.fill("input[name=de]", "2026-11-20")
    page.fill("input[name=ate]", "2026-11-30")
    page.click("text=Mostrar o período")
    assert page.url.endswith(f"/auditoria?conta={ACCOUNT}&de=2026-11-20&ate=2026-11-30")
    assert "20/11/2026 a 30/11/2026" in page.locator(".periodo-dito").inner_text()
    frame = page.frame_locator("iframe.relatorio")
    expect(frame.locator("h1")).to_have_text("Relatório de contatos de cobrança")
    assert page.locator("iframe.relatorio").get_attribute("sandbox") == ""
    report = frame.locator("body")
    expect(report).to_contain_text("período: 20/11/2026 a 30/11/2026")
    expect(report).to_contain_text("Cabeça do registro em 24/11/2026")
    shown = HEAD.fullmatch(frame.locator("[data-head]").inner_text())
    head = console.cli.json("verify-log")["head"]  # the CLI's own check, on the same log, after
    assert shown.groups() == (str(head["count"]), head["hash"])
    expect(frame.locator("[data-verified]")).to_contain_text("Registro íntegro")
    assert frame.locator("tr[data-attempt]").count() >= 1
    expect(report).to_contain_text("fatura 2026-11-padaria-sao-joao paga em 24/11/2026")
    assert "fatura 2026-10-padaria-sao-joao paga" not in report.inner_text()  # 19/10: before the period
    shoot(page, "auditoria")

    name = f"auditoria-{ACCOUNT}-2026-11-20-a-2026-11-30"
    with page.expect_download() as got:
        page.click(".baixar >> text=HTML")
    assert got.value.suggested_filename == f"{name}.html"
    downloaded = tmp_path / "relatorio.html"
    got.value.save_as(downloaded)
    assert f'<code data-head>{head["count"]}:{head["hash"]}</code>' in downloaded.read_text(encoding="utf-8")
    with page.expect_download() as got:
        page.click(".baixar >> text=PDF")
    assert got.value.suggested_filename == f"{name}.pdf"
    pdf = tmp_path / "relatorio.pdf"
    got.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    said = re.search(r"Cabeça do registro(.*?)Registro íntegro", text, re.S).group(1)  # a wrapped grid cell
    assert "em 24/11/2026" in said and f'{head["count"]}:{head["hash"]}' in said
    with page.expect_download() as got:
        page.click(".baixar >> text=Anexo")
    appendix = tmp_path / "anexo.zip"
    got.value.save_as(appendix)
    assert "LEIAME.txt" in zipfile.ZipFile(appendix).namelist()

    # Relatórios: this month by default; the numbers are `notifier report`'s and `notifier forecast`'s.
    page.click("nav.menu >> text=Relatórios")
    assert page.locator("input[name=mes]").input_value() == "2026-11"
    page.click("a[rel=prev]")  # "← outubro de 2026": nothing sent then
    assert page.url.endswith("/relatorios?mes=2026-10")
    assert "Nenhuma tentativa de contato com aviso datado em outubro de 2026" in page.locator(".mensal").inner_text()
    page.fill("input[name=mes]", "2026-11")
    page.click(".mes-escolha button[type=submit]")
    assert page.url.endswith("/relatorios?mes=2026-11")
    rows = [json.loads(line) for line in console.cli("report", "--month", "2026-11", "--format", "json").stdout.splitlines()]
    assert rows and any(r["recovered"] != "0" for r in rows)
    for r in rows:
        cells = page.locator(f"tr[data-linha='{r['stage']}/{r['channel']}'] td").all_inner_texts()
        assert cells[0] == f"{STAGE_LABELS[r['stage']]} · {CHANNEL_LABELS[r['channel']]}"
        assert cells[1:6] == [str(r[k]) for k in ("attempts", "sent", "failed", "blocked", "task")], (r, cells)
        assert cells[-1] == _brl(r["recovered"]), (r, cells)
        bar = page.locator(f"svg g[data-barra='{STAGE_LABELS[r['stage']]} · {CHANNEL_LABELS[r['channel']]}']").first
        assert bar.locator("text.valor").text_content() == f"{r['attempts']} tentativa" + ("s" if r["attempts"] != 1 else "")
    recovered = console.cli("report", "--month", "2026-11").stdout.splitlines()[-1].rsplit(" ", 1)[1]
    assert page.locator("[data-total=recuperado]").inner_text() == _brl(recovered)
    forecast = json.loads(console.cli("forecast", "--from", "2026-11-24", "--format", "json").stdout)
    per_day = {}
    for r in forecast:
        per_day[r["date"]] = per_day.get(r["date"], 0) + r["messages"]
    busiest = max(per_day, key=per_day.get)
    assert page.locator(f"tr[data-dia='{busiest}'] td").all_inner_texts()[-2] == str(per_day[busiest])
    day = datetime.fromisoformat(busiest).strftime("%d/%m/%Y")
    assert f"{day}: {per_day[busiest]} mensage" in page.locator(f"svg g[data-dia='{busiest}'] title").text_content()
    shoot(page, "relatorios")

    for link, args in (("Baixar CSV de", ("report", "--month", "2026-11", "--format", "csv")),
                       ("Baixar CSV da previsão", ("forecast", "--from", "2026-11-24", "--format", "csv"))):
        with page.expect_download() as got:
            page.click(f"text={link}")
        csv_file = tmp_path / got.value.suggested_filename
        got.value.save_as(csv_file)
        data = csv_file.read_bytes()
        assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data  # Excel in Portuguese
        assert data.decode("utf-8").replace("\r\n", "\n") == console.cli(*args).stdout, link


def test_support_sees_no_finance_page_and_bad_input_is_a_4xx_naming_the_field(console):
    console.cli("run-once", "--date", "2026-11-24")
    finance = ["/auditoria", f"/auditoria?conta={ACCOUNT}", f"/auditoria/{ACCOUNT}.html", f"/auditoria/{ACCOUNT}.pdf",
               f"/auditoria/{ACCOUNT}.zip", f"/clientes/{ACCOUNT}/auditoria?formato=html", "/relatorios",
               "/relatorios?mes=2026-11", "/relatorios/mensal.csv?mes=2026-11", "/relatorios/previsao.csv"]
    with http(console) as client:
        http_login(client, "bia")
        panel = client.get("/").text
        assert 'href="/auditoria"' not in panel and 'href="/relatorios"' not in panel
        assert "Relatório de auditoria" not in client.get(f"/clientes/{ACCOUNT}").text
        for url in finance:
            assert client.get(url).status_code == 403, url
    with http(console) as client:
        http_login(client, "caio")
        for url in finance:
            assert client.get(url).status_code == 200, url
        for url, status, said in (
                ("/auditoria?conta=nobody", 404, "Campo “conta”"),
                (f"/auditoria?conta={ACCOUNT}&de=amanh%C3%A3", 400, "Campo “de”"),
                (f"/auditoria?conta={ACCOUNT}&de=2026-11-30&ate=2026-11-01", 400, "Campo “ate”"),
                (f"/auditoria/{ACCOUNT}.html?ate=30/11/2026", 400, "Campo “ate”"),
                (f"/auditoria/{ACCOUNT}.pdf?de=2026-02-30", 400, "Campo “de”"),
                ("/auditoria/nobody.zip", 404, "Campo “conta”"),
                ("/relatorios?mes=2026-13", 400, "Campo “mes”"),
                ("/relatorios/mensal.csv?mes=novembro", 400, "Campo “mes”")):
            answer = client.get(url)
            assert (answer.status_code, answer.headers["content-type"]) == (status, "text/html; charset=utf-8"), url
            assert said in answer.text and "Traceback" not in answer.text, (url, answer.text[-600:])
        # The page keeps the console's CSP; the report, with its own inline style, is framed with its own.
        shown = client.get(f"/auditoria?conta={ACCOUNT}")
        assert shown.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self'; style-src 'self'")
        assert "<style" not in shown.text and "<script>" not in shown.text
        framed = client.get(f"/auditoria/{ACCOUNT}.html?tela=1")
        assert framed.headers["content-security-policy"].startswith("sandbox;") and "content-disposition" not in framed.headers
        assert "Registro íntegro" in framed.text

        # A stored message changed after the send: the report says so, never "íntegro".
        sending = next(r for r in console.records("sending") if r.get("account") == ACCOUNT and r.get("message"))
        pack = console.workdir / "attempts.jsonl.messages" / sending["message"]["pack"]
        data = bytearray(pack.read_bytes())
        data[sending["message"]["offset"] + 10] ^= 0xFF
        pack.write_bytes(bytes(data))
        damaged = client.get(f"/auditoria/{ACCOUNT}.html").text
        assert "Registro íntegro" not in damaged and "NÃO confere(m) com o SHA-256 registrado" in damaged


def test_the_consoles_chain_check_proves_the_whole_chain_once_then_what_was_appended_and_says_which(tmp_path):
    log = AttemptLog(tmp_path / "attempts.jsonl")
    when = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)

    def note(n: int) -> None:
        for i in range(n):
            log.note(when, "contact", {"account": "acme", "channel": "phone", "outcome": "reached", "note": f"nota {i}"}, "ana")

    note(5)
    clock = [datetime(2026, 11, 24, 9, 0, tzinfo=SP)]
    check = ChainCheck(log, lambda: clock[0])
    verdict, scope = check.verdict()
    assert verdict.ok and verdict.head.count == 5 and scope is None  # the whole chain, for this call

    note(2)
    clock[0] += timedelta(minutes=10)
    verdict, scope = check.verdict()
    assert verdict.ok and verdict.head == log.head() and verdict.head.count == 7
    assert (scope.whole_at, scope.whole_count, scope.appended) == (datetime(2026, 11, 24, 9, 0, tzinfo=SP), 5, 2)

    # The last record proven, changed without changing its length: seen before anything is built on it.
    path = tmp_path / "attempts.jsonl"
    original = path.read_bytes()
    lines = original.splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1].replace(b"nota 1", b"nota Y"))
    verdict, scope = check.verdict()
    assert not verdict.ok and scope is None and "record 7" in verdict.problems[0], verdict.problems
    path.write_bytes(original)
    verdict, scope = check.verdict()
    assert verdict.ok and scope is None  # proven again, whole, at 09:10

    # A record appended and chained on by something else than the notifier (the head the state
    # keeps did not move): the appended records chain, but not to that head.
    last = json.loads(lines[-1])
    forged = orjson.dumps({**last, "seq": 8, "id": "f" * 32, "prev": hashlib.sha256(lines[-1].rstrip(b"\n")).hexdigest()})
    path.write_bytes(original + forged + b"\n")
    verdict, scope = check.verdict()
    assert not verdict.ok and scope is None and "records 8 to 8 were appended" in verdict.problems[0], verdict.problems
    path.write_bytes(original)
    assert check.verdict()[0].ok

    # An old record changed without changing its length is what the shortcut cannot see: the
    # verdict's scope says the whole chain was checked at 09:10 (the report prints it), and once
    # that check is an hour old it runs again (in the background) and names the change.
    path.write_bytes(b"".join(lines[:1]) + lines[1].replace(b"nota 1", b"nota Z") + b"".join(lines[2:]))
    verdict, scope = check.verdict()
    assert verdict.ok and scope.whole_at == datetime(2026, 11, 24, 9, 10, tzinfo=SP) and scope.appended == 0
    clock[0] += timedelta(hours=2)
    check.verdict()
    for thread in threading.enumerate():
        if thread.name == "chain-recheck":
            thread.join(60)
    verdict, scope = check.verdict()
    assert not verdict.ok and scope is None and "record 2" in verdict.problems[0], verdict.problems
    log.close()
