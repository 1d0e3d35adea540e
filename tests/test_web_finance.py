"""Registro and Pagamentos as finance uses them: a real `notifier web` process, a real Chromium
(Playwright) or plain HTTP (httpx), the real CLI on the same state. Fixtures: tests/web_helpers.py."""
from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.web_helpers import http, http_login, login, shoot

PADARIA = "padaria-sao-joao"
INVOICE = "2026-11-padaria-sao-joao"  # open in the example state, issued 05/11/2026


def _payments(console) -> list[dict]:
    return [r for r in console.records() if r["event"] in ("payment", "payment_corrected")]


def test_finance_finds_a_customers_month_opens_a_record_exports_verifies_and_records_and_corrects_a_payment(console, browser):
    console.cli("run-once", "--date", "2026-11-24")  # the month's notices: e-mails, WhatsApp, a social task...
    page = browser.new_page()
    login(page, console, "caio")
    assert page.locator("nav.menu a").all_inner_texts() == ["Painel", "Clientes", "Tarefas", "Registro", "Pagamentos",
                                                         "Auditoria", "Relatórios"]
    page.click("nav.menu >> text=Registro")
    rows = page.locator("table.registro tbody tr")
    assert rows.count() > 5  # every customer's attempts, newest first

    # The month's e-mails to one customer, with the filters.
    page.fill("input[name=de]", "2026-11-01")
    page.fill("input[name=ate]", "2026-11-30")
    page.fill("input[name=conta]", PADARIA)
    page.select_option("select[name=canal]", "email")
    page.click("form.filtros-registro button[type=submit]")
    assert "conta=padaria-sao-joao" in page.url and "canal=email" in page.url  # a URL to bookmark
    assert rows.count() >= 1
    assert set(page.locator("table.registro td[data-label=Conta]").all_inner_texts()) == {PADARIA}
    assert set(page.locator("table.registro td[data-label=Canal]").all_inner_texts()) == {"E-mail"}
    shown = [re.search(r"/registro/(\w+)$", a.get_attribute("href")).group(1)
             for a in page.locator("table.registro td[data-label='Data/hora'] a").all()]
    # The CLI lists the same attempts for the same filters (oldest first).
    cli = console.cli("attempts", "--account", PADARIA, "--since", "2026-11-01", "--until", "2026-11-30",
                      "--channel", "email", "--format", "json").stdout
    assert [json.loads(line)["id"] for line in cli.splitlines()][::-1] == shown
    shoot(page, "registro")

    # One record: its history and the message as sent.
    page.locator("table.registro td[data-label='Data/hora'] a").first.click()
    assert page.url.endswith(f"/registro/{shown[0]}")
    history = page.locator(".historico").inner_text()
    assert "registrada antes do envio" in history and "gravado na caixa de saída local" in history
    frame = page.locator("iframe.mensagem")
    assert frame.get_attribute("sandbox") == ""
    expect(page.frame_locator("iframe.mensagem").locator("body")).to_contain_text("R$ 89,90")
    page.click("text=Versão em texto")
    assert "R$\xa089,90" in page.locator("pre.texto").inner_text()  # the text version (a no-break space, as sent)
    assert page.locator(f"a[href='/clientes/{PADARIA}']").count() == 1
    shoot(page, "registro-tentativa")

    # The CSV of the filtered rows: a real download, Excel pt-BR.
    page.go_back()
    with page.expect_download() as download:
        page.click("text=Exportar CSV")
    saved = download.value
    assert saved.suggested_filename.endswith(".csv") and PADARIA in saved.suggested_filename
    text = open(saved.path(), encoding="utf-8", newline="").read()
    assert text.startswith("\ufeffData/hora;Conta;")
    lines = text.split("\r\n")[1:-1]
    assert len(lines) == len(shown) and [line.split(";")[-1] for line in lines] == shown
    assert all(line.split(";")[1] == PADARIA and line.split(";")[4] == "E-mail" for line in lines)

    # The chain check, its head, and heads pasted from a summary: the right one, a wrong one.
    page.click("text=Verificar o registro")
    page.click("form[action='/registro/verificar'] button[type=submit]")
    expect(page.locator(".verificacao p.ok").first).to_contain_text("Registro íntegro", timeout=60_000)
    count, digest = page.locator("#cabeca").inner_text().split(":")
    assert int(count) == len(console.records())
    summary = f"Registro de tentativas: {count} registros, último hash {digest}"  # the daily summary's line
    page.fill("input[name=cabeca]", summary)
    page.click("form[action='/registro/verificar'] button[type=submit]")
    expect(page.locator(".confere")).to_contain_text("A cabeça informada confere", timeout=60_000)
    shoot(page, "registro-verificar")
    wrong = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    page.fill("input[name=cabeca]", f"{count}:{wrong}")
    page.click("form[action='/registro/verificar'] button[type=submit]")
    expect(page.locator(".nao-confere")).to_contain_text("NÃO confere", timeout=60_000)

    # Pagamentos: record one as the bank reports it, correct it with a reason, see both.
    page.click("nav.menu >> text=Pagamentos")
    page.fill("#registrar input[name=fatura]", INVOICE)
    page.fill("#registrar input[name=pago_em]", "2026-11-23")
    page.click("#registrar button[type=submit]")
    expect(page.locator("p.ok")).to_have_text(f"Pagamento da fatura {INVOICE} registrado: pago em 23/11/2026.")
    page.fill("#corrigir input[name=fatura]", INVOICE)
    page.fill("#corrigir input[name=pago_em]", "2026-11-24")
    page.fill("#corrigir input[name=motivo]", "o banco informou outra data no extrato")
    page.click("#corrigir button[type=submit]")
    expect(page.locator("p.ok")).to_have_text(f"Pagamento da fatura {INVOICE} corrigido: de 23/11/2026 para 24/11/2026.")
    listed = page.locator("table.pagamentos tbody tr")
    assert listed.count() == 2
    newest, first = listed.nth(0).inner_text(), listed.nth(1).inner_text()
    assert "caio" in newest and INVOICE in newest and "24/11/2026" in newest and "antes: 23/11/2026" in newest
    assert "o banco informou outra data no extrato" in newest
    assert "caio" in first and "23/11/2026" in first and "antes:" not in first
    shoot(page, "pagamentos")
    corrected = _payments(console)[-1]
    assert (corrected["event"], corrected["actor"], corrected["role"], corrected["previous_paid"], corrected["reason"]) == (
        "payment_corrected", "caio", "finance", "2026-11-23", "o banco informou outra data no extrato")


def test_support_gets_403_bad_filters_name_the_field_and_a_refused_payment_writes_nothing(console):
    console.cli("run-once", "--date", "2026-11-24")
    some = next(r["id"] for r in console.records("sending"))
    with http(console) as client:
        csrf = http_login(client, "bia")
        menu = client.get("/").text
        assert 'href="/registro"' not in menu and 'href="/pagamentos"' not in menu
        for url in ("/registro", "/registro?canal=email", "/registro.csv", f"/registro/{some}", "/registro/verificar",
                    "/registro/verificar/progresso", "/pagamentos"):
            assert client.get(url).status_code == 403, url
        origin = {"Origin": console.url}
        assert client.post("/pagamentos", data={"csrf": csrf, "fatura": INVOICE, "pago_em": "2026-11-23"},
                           headers=origin).status_code == 403
        assert client.post("/registro/verificar", data={"csrf": csrf}, headers=origin).status_code == 403
    assert _payments(console) == []

    with http(console) as client:
        csrf = http_login(client, "caio")
        for query, field in (("de=2026-13-01", "de"), ("de=2026-11-30&ate=2026-11-01", "ate"), ("canal=fax", "canal"),
                             ("etapa=cobranca", "etapa"), ("situacao=lida", "situacao"), ("pagina=0", "pagina"),
                             ("pagina=dois", "pagina"), ("cliente=x", "cliente"), ("conta=a%07b", "conta"),
                             ("pessoa=" + "x" * 201, "pessoa")):
            for path in ("/registro", "/registro.csv"):
                answer = client.get(f"{path}?{query}")
                assert answer.status_code == 400 and f"“{field}”" in answer.text, (path, query, answer.text[-600:])
                assert "Traceback" not in answer.text
        assert client.get("/registro/0123456789abcdef0123456789abcdef").status_code == 404

        state = (console.workdir / "state.json").read_bytes()
        origin = {"Origin": console.url}
        for form, words in (({"fatura": "2026-11-nao-existe", "pago_em": "2026-11-23"}, "não há fatura"),
                            ({"fatura": INVOICE, "pago_em": "2026-11-25"}, "está no futuro"),
                            ({"fatura": INVOICE, "pago_em": "2026-11-04"}, "antes da emissão da fatura (05/11/2026)"),
                            ({"fatura": INVOICE, "pago_em": "24/11/2026"}, "“pago_em”"),
                            # clinica-vida-plena's November invoice is paid on 13/11 in the example
                            ({"fatura": "2026-11-clinica-vida-plena", "pago_em": "2026-11-20"}, "já está paga em 13/11/2026"),
                            ({"fatura": "2026-11-clinica-vida-plena", "pago_em": "2026-11-20", "corrigir": "1"}, "“motivo”"),
                            ({"fatura": "2026-11-clinica-vida-plena", "pago_em": "2026-11-13", "corrigir": "1",
                              "motivo": "engano"}, "nada a corrigir")):
            answer = client.post("/pagamentos", data={"csrf": csrf, **form}, headers=origin)
            assert answer.status_code == 422 and words in answer.text and "Nada foi registrado" in answer.text, (form, answer.text[-800:])
        assert _payments(console) == [] and (console.workdir / "state.json").read_bytes() == state
