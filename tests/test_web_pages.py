"""Clientes, Cliente and Tarefas as support staff use them: a real `notifier web` process, a real
Chromium (Playwright) or plain HTTP, the real CLI on the same state. Fixtures: tests/web_helpers.py."""
from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.web_helpers import http, http_login, login, shoot

SP = ZoneInfo("America/Sao_Paulo")


def _outside_contact_hours(console) -> None:
    """Restart the console with contact hours that exclude this very moment (the console runs on
    the real clock), so that an escalation by WhatsApp must wait, whatever the time of the run."""
    hour = datetime.now(SP).hour
    span = '"13:00-14:00"' if hour < 12 else '"06:00-07:00"'
    path = console.workdir / "outside-hours.toml"
    path.write_text("[contact_hours]\n" + "".join(f"{k} = {span}\n" for k in ("weekdays", "saturday", "sunday", "holidays")))
    console.cli.env["NOTIFIER_CONFIG"] = str(path)
    console.restart()


def test_a_support_agent_finds_reads_escalates_calls_and_holds_and_the_next_cycle_sends_nothing(console, browser):
    console.cli("run-once", "--date", "2026-11-24")  # what was sent: the overdue e-mails, a social task...
    _outside_contact_hours(console)
    page = browser.new_page()
    login(page, console, "bia")
    page.click("nav.menu >> text=Clientes")
    page.wait_for_load_state()  # htmx (a deferred script) is ready, as it is by the time a person types
    page.fill("input[name=q]", "pada")  # part of the company name, as typed
    page.wait_for_selector(".resultados a")  # htmx: results as you type, no submit
    assert page.locator(".resultados a").all_inner_texts() == ["Padaria São João Ltda"]
    shoot(page, "clientes")
    page.click(".resultados a")
    assert page.url.endswith("/clientes/padaria-sao-joao")
    assert page.locator("h1").inner_text() == "Padaria São João Ltda"
    # What was sent, as the customer saw it: the e-mail in a sandboxed frame.
    first = page.locator(".evento.sending", has=page.locator("iframe.mensagem")).first
    first.locator("summary", has_text="A mensagem como o cliente viu").click()
    frame = first.locator("iframe.mensagem")
    assert frame.get_attribute("sandbox") == ""
    expect(first.frame_locator("iframe.mensagem").locator("body")).to_contain_text(
        "não identificamos o pagamento da fatura de R$ 89,90 da hospedagem de padariasaojoao.com.br")
    shoot(page, "cliente")

    page.click("text=Escalonar agora")
    for box in page.locator("form[action$='/escalar'] input[name=canal]").all():
        box.set_checked(box.get_attribute("value") == "whatsapp")
    page.click("form[action$='/escalar'] button[type=submit]")
    done = page.locator("p.ok").inner_text()
    assert re.search(r"WhatsApp → \+5511987452310: aguardando o horário de contato \(a partir de \d\d/\d\d/\d{4} \d\d:\d\d\)", done), done
    assert console.records("escalation")[-1]["waiting"] == ["whatsapp"]
    assert not [r for r in console.records("sending") if r.get("escalation")]  # nothing went out

    page.click("text=Registrar contato")
    page.select_option("form[action$='/contato'] select[name=canal]", "phone")
    page.select_option("form[action$='/contato'] select[name=resultado]", "promised_payment")
    page.fill("form[action$='/contato'] input[name=nota]", "Vai pagar na sexta")
    page.click("form[action$='/contato'] button[type=submit]")
    assert page.locator("p.ok").inner_text() == "Contato registrado."
    contact = console.records("contact")[-1]
    assert (contact["actor"], contact["role"], contact["outcome"], contact["note"]) == (
        "bia", "support", "promised_payment", "Vai pagar na sexta")

    today = datetime.now(SP).date()
    page.click("text=Pausar a cobrança")
    page.fill("form[action$='/pausar'] input[name=ate]", (today + timedelta(days=10)).isoformat())
    page.click("form[action$='/pausar'] button[type=submit]")
    assert f"Cobrança pausada até {today + timedelta(days=10):%d/%m/%Y}" in page.locator("p.ok").inner_text()
    history = page.locator(".historico").inner_text()
    assert "Pausa na cobrança" in history and "Vai pagar na sexta" in history and "Escalonamento" in history
    shoot(page, "cliente-acoes")

    day = (today + timedelta(days=1)).isoformat()
    planned = [n["account"] for n in console.cli.json("plan", "--date", day)]
    assert "padaria-sao-joao" in planned  # the ladder wants to write to them that day...
    before = len(console.records())
    console.cli("run-once", "--date", day)
    cycle = console.records()[before:]
    assert any(r["event"] == "sending" for r in cycle)  # others were written to
    assert not [r for r in cycle if r["event"] == "sending" and r.get("account") == "padaria-sao-joao"]  # ...not them


def test_a_support_agent_works_the_task_queue(console, browser):
    console.cli("run-once", "--date", "2026-11-24")
    browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.url)
    page = browser.new_page()
    login(page, console, "bia")
    page.click("nav.menu >> text=Tarefas")
    page.select_option("select[name=tipo]", "social_manual")
    page.click("text=Filtrar")
    tasks = page.locator("section.tarefa")
    assert tasks.count() >= 1
    task = tasks.filter(has_text="padaria-sao-joao").first
    assert task.locator("a", has_text="Abrir o perfil").get_attribute("href") == "https://www.instagram.com/padariasaojoao/"
    text = task.locator("pre.texto").inner_text()
    assert "padariasaojoao.com.br" in text
    task.locator("text=Assumir").click()
    assert "A tarefa de padaria-sao-joao agora é sua." in page.locator("p.ok").inner_text()
    assigned = console.records("task_assigned")[-1]
    assert (assigned["actor"], assigned["role"], assigned["account"]) == ("bia", "support", "padaria-sao-joao")
    page.check("input[name=minhas]")
    page.click("text=Filtrar")
    assert page.locator("section.tarefa").count() == 1  # only the one she took
    task = page.locator("section.tarefa").first
    assert "Com você." in task.inner_text()
    shoot(page, "tarefas")
    task.locator("text=Copiar o texto").click()
    assert task.locator("text=Copiado").is_visible()
    assert page.evaluate("navigator.clipboard.readText()") == text
    task.locator("text=Enviei").click()
    assert "Tarefa de padaria-sao-joao concluída." in page.locator("p.ok").inner_text()
    done = console.records("task_done")[-1]
    assert (done["actor"], done["role"], done["account"], done["outcome"]) == ("bia", "support", "padaria-sao-joao", "enviei")
    assert page.locator("section.tarefa", has_text="padaria-sao-joao").count() == 0  # it left the open list


def test_customer_text_is_escaped_the_email_frame_is_sandboxed_and_payments_are_finances(console):
    state = json.loads((console.workdir / "state.json").read_text())
    state["accounts"]["padaria-sao-joao"]["company"] = '<script>alert(1)</script> \u202eLtda'
    console.put_state(state)
    console.cli("run-once", "--date", "2026-11-24")
    with http(console) as client:
        token = http_login(client, "bia")
        found = client.get("/clientes", params={"q": "script"}, headers={"HX-Request": "true"})
        assert "<script>alert" not in found.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in found.text
        assert "<html" not in found.text  # only the results, for htmx to swap in
        page = client.get("/clientes/padaria-sao-joao")
        assert page.status_code == 200 and "<script>alert" not in page.text and "U+202E" in page.text
        attempt = re.search(r'/clientes/padaria-sao-joao/mensagens/(\w+)', page.text).group(1)
        message = client.get(f"/clientes/padaria-sao-joao/mensagens/{attempt}")
        assert message.status_code == 200 and message.headers["content-security-policy"].startswith("sandbox;")
        assert client.get(f"/clientes/oficina-dois-irmaos/mensagens/{attempt}").status_code == 404  # not theirs
        assert client.get("/clientes/nobody").status_code == 404
        origin = {"Origin": console.url}
        refused = client.post("/clientes/padaria-sao-joao/pagamento", headers=origin,
                              data={"csrf": token, "fatura": "2026-11-padaria-sao-joao", "pago_em": "2026-11-25"})
        assert refused.status_code == 403 and not console.records("payment")
        bad = client.post("/clientes/padaria-sao-joao/pausar", headers=origin,
                          data={"csrf": token, "motivo": "disputed", "ate": "amanhã"})
        assert bad.status_code == 422 and "informe uma data" in bad.text and not console.records("hold")
        assert client.get("/clientes/padaria-sao-joao/auditoria").status_code == 403  # finance's
    with http(console) as client:
        http_login(client, "caio")
        report = client.get("/clientes/padaria-sao-joao/auditoria", params={"formato": "html"})
        assert report.status_code == 200 and report.headers["content-disposition"] == (
            'attachment; filename="auditoria-padaria-sao-joao.html"')
        assert "data-attempt" in report.text and "<script>alert" not in report.text
        appendix = client.get("/clientes/padaria-sao-joao/auditoria", params={"formato": "zip"})
        assert appendix.status_code == 200 and appendix.headers["content-type"] == "application/zip"
        assert "LEIAME.txt" in zipfile.ZipFile(io.BytesIO(appendix.content)).namelist()


def test_an_escalation_to_a_slow_smtp_server_does_not_hold_up_another_persons_page(console):
    """The views run in the threadpool: while one escalation waits for a slow SMTP server, another
    person's pages are served. Ordering, not timing: the server holds the e-mail's DATA until the
    other page has come back (and lets it go by itself after 30 s, so a console that serves one
    request at a time fails this test with a timeout of the other page instead of hanging)."""
    import asyncio
    import threading

    from tests.smtp_server import RecordingHandler, SmtpServer

    class HeldHandler(RecordingHandler):
        def __init__(self):
            super().__init__()
            self.holding, self.release = threading.Event(), threading.Event()

        async def handle_DATA(self, server, session, envelope):
            self.holding.set()
            for _ in range(3000):  # 30 s at most
                if self.release.is_set():
                    break
                await asyncio.sleep(0.01)
            return await super().handle_DATA(server, session, envelope)

    handler = HeldHandler()
    state = json.loads((console.workdir / "state.json").read_text())
    account = next(i["account"] for i in state["invoices"].values()
                   if "paid" not in i and i["issued"] <= console.day and state["accounts"][i["account"]].get("emails"))
    with SmtpServer(handler) as smtp:
        console.cli.env["EMAIL_URL"] = smtp.url()
        console.restart()
        agent, other = http(console), http(console)
        csrf = http_login(agent, "bia")
        http_login(other, "caio")
        origin = {"Origin": console.url}
        answers = {}

        def escalate():
            answers["escalation"] = agent.post(f"/clientes/{account}/escalar", data={"csrf": csrf, "canal": "email"},
                                               headers=origin, timeout=60)
        sender = threading.Thread(target=escalate)
        sender.start()
        try:
            assert handler.holding.wait(30), "the escalation never reached the SMTP server"
            page = other.get(f"/clientes/{account}", timeout=10)  # while the e-mail is held
            served_while_held = not handler.release.is_set()
            tasks = other.get("/tarefas", timeout=10)
        finally:
            handler.release.set()
            sender.join(60)
        assert page.status_code == 200 and tasks.status_code == 200 and served_while_held
        assert answers["escalation"].status_code == 200, answers["escalation"].text[-500:]
        assert "Escalonamento registrado" in answers["escalation"].text
        assert len(smtp.received) >= 1
    sending = [r for r in console.records("sending") if r.get("escalation")]
    assert sending and {r["actor"] for r in sending} == {"bia"}


def test_the_painel_and_tarefas_show_at_once_what_other_processes_did_and_a_long_queue_is_paged(console, browser):
    """The Painel and the Tarefas keep what they drew (the day's plan, the task list) only while
    the state and the log are the ones they were drawn from: a payment and a task closed by the
    CLI show at the next view. A queue longer than a page is paged, newest first."""
    from notifier.log.attempts import AttemptLog
    console.cli("run-once", "--date", "2026-11-24")
    with http(console) as client:
        http_login(client, "ana")

        def painel() -> tuple[int, int]:
            text = client.get("/").text
            tasks = re.search(r"<h2>Tarefas abertas</h2>\s*<p class=\"grande\">(\d+)</p>", text).group(1)
            paid = re.search(r"em (\d+) fatura\(s\) paga\(s\) depois do vencimento", text).group(1)
            return int(tasks), int(paid)

        open_tasks, paid_late = painel()
        assert painel() == (open_tasks, paid_late)  # drawn again from what it kept
        listed = client.get("/tarefas").text
        task = console.cli.json("tasks", "--open")[0]["id"]
        assert f"/tarefas/{task}/concluir" in listed and "Página 1 de" not in listed
        state = json.loads((console.workdir / "state.json").read_text())
        late = next(key for key, inv in state["invoices"].items()
                    if "paid" not in inv and inv["due"] < "2026-11-20" and inv["issued"] <= console.day)
        console.cli("pay", late, "--date", console.day, "--by", "caio")
        console.cli("tasks", "done", task, "--by", "bia", "--outcome", "feito por telefone")
        assert painel() == (open_tasks - 1, paid_late + 1)
        assert f"/tarefas/{task}/concluir" not in client.get("/tarefas").text

        # 60 tasks more (sends a crash left unanswered), written by another writer of the log
        log = AttemptLog(console.workdir / "attempts.jsonl")
        when = datetime(2026, 11, 24, 15, tzinfo=SP)
        ids = log.note_many([(when + timedelta(seconds=n), "unknown", {"account": "padaria-sao-joao", "n": n}, "daemon")
                             for n in range(60)])
        total = open_tasks - 1 + 60
        assert painel()[0] == total
        first = client.get("/tarefas").text
        assert f"Mostrando 1–50 de {total} tarefas abertas, as mais novas primeiro (página 1 de 2)" in first
        assert f"/tarefas/{ids[-1]}/concluir" in first and f"/tarefas/{ids[0]}/concluir" not in first
        assert 'href="/tarefas?tipo=&amp;minhas=&amp;abertas=&amp;pagina=2" rel="next"' in first
        second = client.get("/tarefas", params={"pagina": 2}).text
        assert f"Mostrando 51–{total} de {total}" in second and f"/tarefas/{ids[0]}/concluir" in second
        assert f"/tarefas/{ids[-1]}/concluir" not in second
    page = browser.new_page()
    login(page, console, "bia")
    page.goto(console.url + "/tarefas")
    assert page.locator("section.tarefa").count() == 50
    shoot(page, "tarefas-paginas")
    page.click("nav.paginas >> text=Mais antigas")
    assert page.url.endswith("pagina=2") and page.locator("section.tarefa").count() == total - 50
    assert page.locator("nav.paginas a[rel=prev]").is_visible()
