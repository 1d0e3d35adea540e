"""The JSON API (issue 21): real HTTP to a real `notifier web` process, tokens from the real CLI.

One console per test, many checks per test (the suite's time): the role matrix and every
endpoint's answers; a payment pushed through the API and the next `run-once` sending that invoice
nothing; the schema fuzzed by schemathesis with each role's token; the token part of Configuração
in Chromium.
"""
from __future__ import annotations

import time
from collections import Counter

import httpx

from tests.smtp_server import SmtpServer
from tests.web_helpers import http, http_login, login, shoot

PAID = "2026-11-padaria-sao-joao"  # open, its overdue notice due on the console's day (24/11/2026)


def token(console, name: str) -> str:
    """`notifier users token NAME` as a script runs it: the token is stdout's one line."""
    proc = console.users("token", name)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dn_") and len(lines[0]) == 46, proc.stdout
    assert lines[0] not in proc.stderr and "shown only now" in proc.stderr
    return lines[0]


def api(console, token_: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token_}"} if token_ else {}
    return httpx.Client(base_url=console.url + "/api", headers=headers, timeout=30)


def unauthorized(answer: httpx.Response) -> bool:
    return answer.status_code == 401 and answer.headers.get("www-authenticate") == "Bearer" and "error" in answer.json()


def test_tokens_carry_their_users_role_and_stop_at_once_when_revoked_or_disabled(console):
    support, finance = token(console, "bia"), token(console, "caio")
    users_file = (console.workdir / "state.json.users").read_text()
    assert support not in users_file and finance not in users_file  # only the hash is kept
    with api(console) as anonymous, api(console, support) as bia, api(console, finance) as caio:
        assert unauthorized(anonymous.get("/accounts", params={"q": "padaria"}))
        assert unauthorized(anonymous.post(f"/invoices/{PAID}/payment", json={"paid": "2026-11-23"}))
        assert unauthorized(anonymous.get("/tasks", headers={"Authorization": "Bearer dn_" + "x" * 43}))
        assert unauthorized(anonymous.get("/tasks", headers={"Authorization": f"Basic {support}"}))
        assert bia.get("/accounts", params={"q": "padaria"}).status_code == 200
        refused = bia.post(f"/invoices/{PAID}/payment", json={"paid": "2026-11-23"})
        assert refused.status_code == 403 and refused.json() == {"error": "the role support may not do this"}
        # Checked before the body is read: a role that may not gets its 403 whatever it sends.
        garbled = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
        assert bia.post(f"/invoices/{PAID}/payment", **garbled).status_code == 403
        assert caio.post(f"/invoices/{PAID}/payment", **garbled).status_code == 400
        # A session cookie is no key to the API, and the console's own pages still want one.
        with http(console) as browser:
            http_login(browser, "ana")
            assert unauthorized(browser.get("/api/tasks"))
            assert browser.get("/tarefas").status_code == 200
            assert browser.get("/tarefas", headers={"Authorization": f"Bearer {support}"}).status_code == 200
        with http(console) as stranger:  # ...and a token is no key to the pages
            assert stranger.get("/tarefas", headers={"Authorization": f"Bearer {support}"}).status_code == 303

        newer = token(console, "bia")  # one token a user: the new one replaces the old at once
        assert "it replaces the token created" in console.users("token", "bia").stderr
        assert unauthorized(bia.get("/tasks")) and unauthorized(api(console, newer).get("/tasks"))
        assert console.users("revoke-token", "caio").returncode == 0
        assert unauthorized(caio.get("/tasks"))
        again = console.users("revoke-token", "caio")
        assert again.returncode == 1 and "caio has no API token" in again.stderr
        ana = token(console, "ana")
        assert api(console, ana).get("/tasks").status_code == 200
        console.add_user("root2", "admin")
        assert console.users("disable", "ana").returncode == 0
        assert unauthorized(api(console, ana).get("/tasks"))  # disabled: refused at the next request
    records = [r for r in console.records() if r["event"].startswith("user_token")]
    assert [(r["event"], r["user"], r["replaced"] if "replaced" in r else None) for r in records] == [
        ("user_token_created", "bia", False), ("user_token_created", "caio", False),
        ("user_token_created", "bia", True), ("user_token_created", "bia", True),
        ("user_token_revoked", "caio", None), ("user_token_created", "ana", False)]
    assert all(r["role"] == "cli" for r in records)
    log = (console.workdir / "attempts.jsonl").read_text()
    assert support not in log and finance not in log and ana not in log


def test_every_endpoint_answers_json_and_signs_what_it_changes_with_the_tokens_user(console):
    with api(console, token(console, "caio")) as caio, api(console, token(console, "bia")) as bia:
        [found] = caio.get("/accounts", params={"q": "15.881.399/0001-34"}).json()
        assert (found["id"], found["matched"]) == ("padaria-sao-joao", "CNPJ/CPF")
        assert caio.get("/accounts", params={"q": "nada-parecido"}).json() == []
        missing = caio.get("/accounts")
        assert missing.status_code == 422 and missing.json() == {"error": "q: Field required"}

        account = caio.get("/accounts/padaria-sao-joao").json()
        [open_] = [i for i in account["invoices"] if i["paid"] is None]
        assert (open_["id"], open_["amount"], open_["overdue"]) == (PAID, "89.90", "2026-11-24")
        assert account["next"][0]["date"] == "2026-11-24" and "history" not in account
        assert caio.get("/accounts/nada").json() == {"error": "no account 'nada'"}
        assert caio.get("/accounts/nada/history").status_code == 404

        paid = caio.post(f"/invoices/{PAID}/payment", json={"paid": "2026-11-23"})
        assert paid.json() == {"invoice": PAID, "account": "padaria-sao-joao", "paid": "2026-11-23", "recorded": True}
        same = caio.post(f"/invoices/{PAID}/payment", json={"paid": "2026-11-23"})  # a retried webhook
        assert same.status_code == 200 and same.json()["recorded"] is False
        other = caio.post(f"/invoices/{PAID}/payment", json={"paid": "2026-11-22"})
        assert other.status_code == 409 and "already paid on 2026-11-23, not 2026-11-22" in other.json()["error"]
        for paid_on, said in (("2026-11-25", "paid: in the future"), ("2026-11-02", "paid: before the issue date"),
                              ("24/11/2026", "paid: write the date as YYYY-MM-DD"), ("9999-12-31", "outside 2000-2099")):
            answer = caio.post("/invoices/2026-11-oficina-dois-irmaos/payment", json={"paid": paid_on})
            assert answer.status_code == 422 and said in answer.json()["error"], (paid_on, answer.text)
        extra = caio.post("/invoices/2026-11-oficina-dois-irmaos/payment", json={"paid": "2026-11-20", "pago": 1})
        assert extra.status_code == 422 and extra.json()["error"].startswith("pago: ")
        assert caio.post("/invoices/nada/payment", json={"paid": "2026-11-20"}).status_code == 404

        hold = {"reason": "negotiating", "until": "2026-12-10", "note": "ligou pedindo prazo"}
        placed = bia.post("/accounts/atelie-flor-de-lis/hold", json=hold)
        assert placed.status_code == 200 and placed.json()["hold"]["by"] == "bia"
        assert placed.json()["unwarned_suspensions"] == {"2026-11-atelie-flor-de-lis": "2026-12-01"}
        taken = caio.post("/accounts/atelie-flor-de-lis/hold", json={**hold, "reason": "disputed"})
        assert taken.status_code == 409 and '"replace": true' in taken.json()["error"]
        replaced = caio.post("/accounts/atelie-flor-de-lis/hold", json={**hold, "reason": "disputed", "replace": True})
        assert replaced.json()["replaced"]["by"] == "bia"
        for body, said in (({**hold, "until": "2026-11-24"}, "until: 2026-11-24 is not after today"),
                           ({**hold, "reason": "férias"}, "reason: Input should be"),
                           ({**hold, "note": "a\u202eb"}, "note: contains U+202E")):
            answer = bia.post("/accounts/atelie-flor-de-lis/hold", json=body)
            assert answer.status_code == 422 and said in answer.json()["error"], answer.text
        assert bia.post("/accounts/nada/hold", json=hold).status_code == 404
        assert bia.delete("/accounts/atelie-flor-de-lis/hold").json()["released"]["reason"] == "disputed"
        assert bia.delete("/accounts/atelie-flor-de-lis/hold").status_code == 404

        history = bia.get("/accounts/atelie-flor-de-lis/history").json()["history"]
        assert [e["kind"] for e in history[:3]] == ["release", "hold", "hold"]
        assert bia.get("/tasks").status_code == 200 and bia.get("/tasks", params={"kind": "nada"}).status_code == 422
        assert bia.get("/nada").status_code == 404 and bia.get("/nada").json() == {"error": "no such endpoint"}
    page = httpx.get(console.url + "/nada")  # the pages keep their HTML errors
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")

    signed = [(r["event"], r["actor"], r["role"], r["client"]) for r in console.records()
              if r["event"] in ("payment", "hold", "release")]
    assert signed == [("payment", "caio", "finance", "api 127.0.0.1"), ("hold", "bia", "support", "api 127.0.0.1"),
                      ("hold", "caio", "finance", "api 127.0.0.1"), ("release", "bia", "support", "api 127.0.0.1")]

    schema = httpx.get(console.url + "/openapi.json").json()
    assert all(path.startswith("/api/") for path in schema["paths"]) and len(schema["paths"]) == 6
    assert schema["components"]["securitySchemes"] == {"token": {
        "type": "http", "scheme": "bearer", "description": schema["components"]["securitySchemes"]["token"]["description"]}}
    assert schema["components"]["schemas"]["PaymentIn"]["properties"]["paid"]["format"] == "date"
    assert schema["components"]["schemas"]["HoldReason"]["enum"] == ["promised_payment", "disputed", "negotiating", "other"]


def test_a_payment_pushed_through_the_api_means_the_next_cycle_sends_that_invoice_nothing(console):
    with api(console, token(console, "caio")) as caio:
        assert caio.post(f"/invoices/{PAID}/payment", json={"paid": "2026-11-23"}).status_code == 200
    with SmtpServer() as smtp:
        console.cli("run-once", "--date", "2026-11-24", env={"EMAIL_URL": smtp.url()}, check=False)
        recipients = {r for m in smtp.received for r in m.rcpt_tos}
    assert "contato@oficinadoisirmaos.com.br" in recipients  # the cycle ran, and sent the others theirs
    assert not {r for r in recipients if "padariasaojoao" in r}
    claims = [r for r in console.records("sending") if r["account"] == "padaria-sao-joao"]
    assert claims == []
    [payment] = console.records("payment")
    assert (payment["invoice"], payment["actor"], payment["client"]) == (PAID, "caio", "api 127.0.0.1")


# --- fuzzing from the schema ---------------------------------------------------------------------------

EXAMPLES = 12  # per operation and generation mode (valid and invalid input): 24 cases an operation


def _cases(schema) -> dict[str, list]:
    """Each operation's cases, generated once from the schema with a fixed seed (derandomize):
    EXAMPLES valid ones and EXAMPLES invalid ones. Every caller then sends the same cases."""
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    cases: dict[str, list] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found = cases.setdefault(operation.label, [])
        # Random ids mostly meet a 404: some valid cases are about a real account and invoice.
        real = {k: v for k, v in (("account_id", "atelie-flor-de-lis"), ("invoice_id", "2026-11-pet-shop-amigo-fiel"))
                if "{" + k + "}" in operation.path}
        for mode, n, fixed in ((GenerationMode.POSITIVE, EXAMPLES, None), (GenerationMode.NEGATIVE, EXAMPLES, None),
                               *([(GenerationMode.POSITIVE, EXAMPLES // 2, real)] if real else [])):
            @settings(max_examples=n, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate])
            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
            def collect(case):
                found.append(case)
            collect()
    return cases


def _send(console, session, case, token_: str | None):
    """`case` with the caller's token alone (not one the generator made up for "bearer")."""
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if token_:
        case.headers["Authorization"] = f"Bearer {token_}"
    return case.call(base_url=console.url, session=session, timeout=30)


def _files(console) -> dict[str, bytes]:
    return {name: (console.workdir / name).read_bytes() if (console.workdir / name).exists() else b""
            for name in ("state.json", "attempts.jsonl", "attempts.jsonl.head", "state.json.users")}


def test_fuzzing_from_the_schema_finds_no_server_error_and_no_change_without_the_role(console):
    """schemathesis generates each operation's cases from /openapi.json; each role's token sends
    them to the live console. Without a token, with a bad one, and with support's on the payment
    endpoint, every answer is 401/403 and the state, the log and its head are the same bytes
    after; with the token of a role that may, no answer is a 5xx and each matches the schema."""
    import requests
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance
    from notifier.log.attempts import AttemptLog
    from notifier.web import users
    log = AttemptLog(console.workdir / "attempts.jsonl")  # the CLI's call, in this process: no start-up per token
    tokens = {name: users.new_token(users.UserStore(console.workdir / "state.json.users"), log,
                                    users.Actor("test", "cli", "terminal"), name)[0] for name in ("bia", "caio", "ana")}
    log.close()
    started = time.monotonic()
    schema = schemathesis.openapi.from_dict(httpx.get(console.url + "/openapi.json").json())
    cases = _cases(schema)
    generated = time.monotonic()
    payment = "POST /api/invoices/{invoice_id}/payment"
    assert len(cases) == 7 and payment in cases
    sent, statuses = 0, Counter()
    with requests.Session() as session:
        before = _files(console)
        for label, found in cases.items():
            for who, status in ((None, 401), ("dn_" + "0" * 43, 401), *([(tokens["bia"], 403)] if label == payment else [])):
                for case in found if who is None or label == payment else found[:4]:
                    answer = _send(console, session, case, who)
                    sent += 1
                    assert answer.status_code == status, (label, case.body, answer.status_code, answer.text)
                    assert answer.json().keys() == {"error"}
        assert _files(console) == before  # byte for byte: not a record, not a write

        for name in ("bia", "caio", "ana"):
            for label, found in cases.items():
                if name == "bia" and label == payment:
                    continue
                for case in found if name != "ana" else found[::3]:  # admin: as finance on the API
                    answer = _send(console, session, case, tokens[name])
                    sent += 1
                    statuses[answer.status_code] += 1
                    assert answer.status_code < 500, (name, label, case.body, answer.text)
                    case.validate_response(answer, checks=[not_a_server_error, response_schema_conformance])
                    if answer.status_code >= 400:
                        assert answer.json().keys() == {"error"}, answer.text
    done = time.monotonic()
    print(f"fuzz: {sum(map(len, cases.values()))} cases generated in {generated - started:.1f} s, "
          f"{sent} requests in {done - generated:.1f} s; with a role that may: {dict(sorted(statuses.items()))}")
    assert statuses[200] > 20  # the fuzz reached the library, not only the validation
    assert sent > 400


def test_an_admin_creates_a_token_on_configuracao_uses_it_and_revokes_it(console, browser):
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Revogar o token...?"
    login(page, console, "ana")
    page.goto(console.url + "/configuracao")
    row = page.locator("tr", has_text="caio")
    assert row.locator("[data-label='Token da API']").inner_text() == "nenhum"
    row.get_by_role("button", name="Gerar token").click()
    shown = page.locator("#token-api").inner_text()
    assert "não será mostrado de novo" in page.locator("#token-novo").inner_text()
    shoot(page, "configuracao-token")
    with api(console, shown) as caio:
        assert caio.get("/tasks").status_code == 200
        assert caio.post(f"/invoices/{PAID}/payment", json={"paid": "2026-11-23"}).status_code == 200
        page.goto(console.url + "/configuracao")  # the token is shown once: not on the page again
        assert shown not in page.content()
        assert page.locator("tr", has_text="caio").locator("[data-label='Token da API']").inner_text().startswith("desde ")
        page.locator("tr", has_text="caio").get_by_role("button", name="Revogar token").click()
        page.wait_for_url(console.url + "/configuracao")
        assert page.locator("tr", has_text="caio").locator("[data-label='Token da API']").inner_text() == "nenhum"
        assert unauthorized(caio.get("/tasks"))
    signed = [(r["event"], r["actor"], r["role"]) for r in console.records() if r["event"].startswith("user_token")]
    assert signed == [("user_token_created", "ana", "admin"), ("user_token_revoked", "ana", "admin")]
    assert shown not in (console.workdir / "attempts.jsonl").read_text()
    # Support and finance see no Configuração; its token URLs answer them 403.
    with http(console) as bia:
        csrf = http_login(bia, "bia")
        assert bia.post("/configuracao/usuarios/caio/token", data={"csrf": csrf},
                        headers={"Origin": console.url}).status_code == 403
