"""The console's foundation as its users meet it: a real `notifier web` process and a real browser
(Chromium) or plain HTTP; login, sessions, roles, CSRF, escaping. Fixtures: tests/web_helpers.py."""
from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pyotp

from tests.web_helpers import PASSWORD, free_port, http, http_login, login, shoot


def origin(console) -> dict:
    return {"Origin": console.url}


def test_login_shows_the_panel_with_the_menu_of_the_role(console, browser):
    page = browser.new_page()
    page.goto(console.url + "/")
    assert page.url.endswith("/login")  # not logged in: to the login page
    shoot(page, "login")
    login(page, console, "ana")
    assert page.url == console.url + "/"
    assert page.locator("h1").inner_text().startswith("Painel")
    assert page.locator("nav.menu a").all_inner_texts() == ["Painel", "Clientes", "Tarefas", "Registro", "Pagamentos",
                                                         "Auditoria", "Relatórios", "Configuração"]
    # The example state's cycle of 24/11 has not run: the Painel says so, in Portuguese.
    assert "Nenhum ciclo completo" in page.locator("main").inner_text()
    shoot(page, "painel-vazio")
    record = console.records("login")[-1]
    assert (record["actor"], record["role"], record["client"]) == ("ana", "admin", "127.0.0.1")


def test_the_painel_after_a_cycle_counts_what_happened_and_what_comes(console, browser):
    console.cli("run-once", "--date", "2026-11-24")
    page = browser.new_page()
    login(page, console, "bia")
    main = page.locator("main").inner_text()
    # The example's cycle writes six e-mails to the local outbox (no provider): never "Enviadas".
    assert "24/11/2026" in main and "Gravadas na saída local\t6" in main and "Enviadas\t0" in main
    assert "grava na saída local" in main  # no provider configured: the outbox, never "envia"
    assert "Mensagens para enviar à mão\t2" in main  # the two Instagram DMs
    assert "Ateliê Flor de Lis Moda Ltda" in main and "28/11/2026 · R$\u00a0149,90" in main  # deletion this week
    assert "R$\u00a0299,90" in main  # paid late on 13/11
    assert page.locator("svg.grafico rect").count() == 30
    # support sees no Configuração, in the menu or by its address
    assert page.locator("nav.menu a").all_inner_texts() == ["Painel", "Clientes", "Tarefas"]
    shoot(page, "painel")
    assert page.goto(console.url + "/configuracao").status == 403
    shoot(page, "acesso-negado")


def test_a_wrong_password_is_refused_and_logged_without_the_password(console, browser):
    page = browser.new_page()
    login(page, console, "ana", password="errada-123456")
    assert page.url.endswith("/login")
    assert page.locator("[role=alert]").inner_text() == "Nome ou senha incorretos."
    shoot(page, "login-erro")
    login(page, console, "ninguem", password="errada-123456")
    assert page.locator("[role=alert]").inner_text() == "Nome ou senha incorretos."  # an unknown name: the same words
    failed = console.records("login_failed")
    assert [(r["actor"], r["reason"], r["known_user"]) for r in failed] == [
        ("ana", "wrong password", True), ("ninguem", "wrong password", False)]
    assert "errada-123456" not in (console.workdir / "attempts.jsonl").read_text()


def test_five_failed_tries_lock_the_name_for_15_minutes(console, browser):
    page = browser.new_page()
    for _ in range(5):
        login(page, console, "bia", password="errada-123456")
    assert "bloqueado até as" in page.locator("[role=alert]").inner_text()
    login(page, console, "bia")  # the right password does not open a locked name
    assert page.url.endswith("/login") and "bloqueado" in page.locator("[role=alert]").inner_text()
    [locked] = console.records("user_locked")
    assert locked["actor"] == "bia" and locked["tries"] == 5
    assert console.records("login_failed")[-1]["reason"] == "locked"
    listing = console.users("list").stdout
    assert re.search(r"^bia\s+support\s+\d{4}-\d\d-\d\dT", listing, re.M), listing  # `users list` shows until when
    login(page, console, "ana")  # another name is not locked
    assert page.url == console.url + "/"


def test_an_idle_session_ends(console, browser):
    console.restart(idle_minutes=0.05)  # 3 seconds
    page = browser.new_page()
    login(page, console, "ana")
    assert page.url == console.url + "/"
    time.sleep(4)
    page.goto(console.url + "/")
    assert page.url.endswith("/login")


def test_logout_ends_the_session_on_the_server(console):
    with http(console) as client:
        token = http_login(client, "ana")
        cookie = client.cookies["nw_session"]
        assert client.post("/logout", data={"csrf": token}, headers=origin(console)).status_code == 303
    assert console.records("logout")[-1]["actor"] == "ana"
    with http(console) as replay:  # the old cookie, kept by someone: worth nothing now
        replay.cookies.set("nw_session", cookie)
        answer = replay.get("/")
        assert answer.status_code == 303 and answer.headers["location"] == "/login"


def test_users_disable_in_another_process_ends_an_open_session_at_once(console, browser):
    page = browser.new_page()
    login(page, console, "bia")
    assert page.url == console.url + "/"
    result = console.users("disable", "bia")
    assert result.returncode == 0, result.stderr
    page.goto(console.url + "/")
    assert page.url.endswith("/login")
    login(page, console, "bia")
    assert page.locator("[role=alert]").inner_text() == "Este usuário está desativado. Fale com um administrador."
    assert console.records("user_disabled")[-1]["user"] == "bia"


def test_a_post_from_another_origin_or_without_the_token_is_refused(console, browser):
    with http(console) as client:
        token = http_login(client, "ana")
        form = {"csrf": token, "nome": "intruso", "papel": "admin", "senha": "senha-longa-123"}
        assert client.post("/configuracao/usuarios", data=form, headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.post("/configuracao/usuarios", data=form, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert client.post("/configuracao/usuarios", data=form).status_code == 403  # neither header
        no_token = {**form, "csrf": "x"}
        assert client.post("/configuracao/usuarios", data=no_token, headers=origin(console)).status_code == 403
        assert "intruso" not in console.users("list").stdout
        # the same request from our own page is accepted: the refusals above were for the origin and the token
        assert client.post("/configuracao/usuarios", data=form, headers=origin(console)).status_code == 200
        assert "intruso" in console.users("list").stdout

    # A real browser, logged in, visits a page of another origin (127.0.0.1 on another port: the
    # same site, so even the SameSite=Strict cookie goes along) that posts a form to the console.
    page = browser.new_page()
    login(page, console, "ana")
    evil = console.workdir / "evil"
    evil.mkdir()
    (evil / "index.html").write_text(
        f'<form method="post" action="{console.url}/configuracao/usuarios">'
        '<input name="nome" value="outro"><input name="papel" value="admin">'
        '<input name="senha" value="senha-longa-123"><input name="csrf" value="adivinhado">'
        '<button>enviar</button></form>')
    handler = lambda *a: SimpleHTTPRequestHandler(*a, directory=str(evil))  # noqa: E731
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        with page.expect_navigation():
            page.click("button")
        assert "Pedido recusado" in page.content()
    finally:
        server.shutdown()
    assert "outro" not in console.users("list").stdout


def test_a_support_user_posting_an_admin_action_gets_403(console):
    with http(console) as client:
        token = http_login(client, "bia")
        for path, form in (("/configuracao/usuarios", {"nome": "eu", "papel": "admin", "senha": "senha-longa-123"}),
                           ("/configuracao/usuarios/ana/desativar", {}), ("/configuracao/2fa-obrigatorio", {"exigir": "sim"})):
            answer = client.post(path, data={"csrf": token, **form}, headers=origin(console))
            assert answer.status_code == 403, path
            assert "O seu perfil não permite esta ação." in answer.text
        assert client.get("/configuracao").status_code == 403
    listing = console.users("list").stdout
    assert "eu " not in listing and "second factor: optional" in listing
    assert not [r for r in console.records() if r["event"].startswith("user_") and r["actor"] == "bia"]


HOSTILE = "<script>alert(1)</script>\u202eLTD \"'&"


def test_customer_text_is_shown_as_text_with_its_bidi_controls_visible(console, browser):
    state = json.loads((console.workdir / "state.json").read_text())
    state["accounts"]["padaria-sao-joao"]["company"] = HOSTILE
    console.put_state(state)
    console.cli("hold", "padaria-sao-joao", "--by", "bia", "--reason", "promised_payment", "--until", "2026-11-30",
                "--date", "2026-11-24")
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, console, "bia")
    item = page.locator(".lista li a").first
    assert item.inner_text() == "<script>alert(1)</script>U+202ELTD \"'&"
    assert item.locator("bdi .ctl").inner_text() == "U+202E"  # the override is shown, not obeyed
    assert dialogs == []
    shoot(page, "painel-texto-hostil")


def test_an_admin_adds_a_user_with_totp_who_logs_in_with_a_code(console, browser, chromium):
    page = browser.new_page()
    login(page, console, "ana")
    page.click("text=Configuração")
    page.fill("input[name=nome]", "dani")
    page.select_option("select[name=papel]", "support")
    page.fill("input[name=senha]", "senha-da-dani-1")
    page.check("input[name=totp]")
    page.click("text=Criar usuário")
    secret = page.locator("#chave-totp").inner_text()
    codes = page.locator(".codigos code").all_inner_texts()
    assert len(codes) == 10
    shoot(page, "configuracao-novo-usuario")
    added = console.records("user_added")[-1]
    assert (added["actor"], added["role"], added["user"], added["totp"]) == ("ana", "admin", "dani", True)
    assert secret not in (console.workdir / "attempts.jsonl").read_text()

    other = chromium.new_context()
    dani = other.new_page()
    login(dani, console, "dani", password="senha-da-dani-1")
    assert dani.url.endswith("/login/2fa")
    shoot(dani, "login-2fa")
    code = pyotp.TOTP(secret).now()
    dani.fill("input[name=codigo]", code)
    dani.click("button[type=submit]")
    assert dani.url == console.url + "/"
    assert "dani" in dani.locator(".quem").inner_text()
    other.close()

    again = chromium.new_context().new_page()  # the same code a second time: refused
    login(again, console, "dani", password="senha-da-dani-1", code=code)
    assert again.url.endswith("/login/2fa") and "já usado" in again.locator("[role=alert]").inner_text()
    again.fill("input[name=codigo]", codes[0])  # a recovery code works, once
    again.click("button[type=submit]")
    assert again.url == console.url + "/"
    assert console.records("recovery_code_used")[-1]["left"] == 9
    again.context.close()


def test_mandatory_totp_makes_a_user_without_one_set_it_up_at_login(console, browser):
    assert console.users("require-2fa", "on").returncode == 0
    page = browser.new_page()
    login(page, console, "bia")
    assert page.url.endswith("/login/2fa")
    secret = page.locator(".chave code").inner_text()
    shoot(page, "login-2fa-configurar")
    page.fill("input[name=codigo]", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.click("button[type=submit]")
    assert "Código incorreto" in page.locator("[role=alert]").inner_text()
    page.fill("input[name=codigo]", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    assert page.locator(".codigos code").count() == 10
    shoot(page, "codigos-de-recuperacao")
    page.click("text=Continuar para o Painel")
    assert page.locator("h1").inner_text().startswith("Painel")
    assert "bia" in console.users("list").stdout.split("second factor")[0]
    assert re.search(r"^bia\s+support\s+yes", console.users("list").stdout, re.M)


def test_users_cli_reads_the_password_from_stdin_and_keeps_hashes_in_a_private_file(console):
    made = console.users("add", "edu", "--role", "finance", password="senha-do-edu-1")
    assert made.returncode == 0, made.stderr
    with http(console) as client:  # edu's password opens the console
        http_login(client, "edu", "senha-do-edu-1")
    path = console.workdir / "state.json.users"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    kept = json.loads(path.read_text())["users"]["edu"]
    assert kept["password"].startswith("$argon2id$") and "senha-do-edu-1" not in path.read_text()
    assert console.users("add", "edu", "--role", "finance", "--password", "x").returncode != 0  # never an argument
    bad = console.users("add", "fabi", "--role", "chefe", password="senha-longa-123")
    assert bad.returncode != 0 and "'chefe' is not one of" in bad.stderr
    short = console.users("add", "fabi", "--role", "support", password="curta")
    assert short.returncode == 1 and short.stderr.strip() == "Error: the password must have at least 10 characters"
    assert "fabi" not in path.read_text()
    reset = console.users("reset-2fa", "edu")
    assert reset.returncode == 0 and "TOTP secret:" in reset.stdout and len(re.findall(r"^  \w{5}-\w{5}$", reset.stdout, re.M)) == 10
    last = console.users("disable", "ana")
    assert last.returncode == 1 and last.stderr.strip() == \
        "Error: ana is the last active admin; add another admin before disabling them"
    unknown = console.users("disable", "zeca")
    assert unknown.returncode == 1 and unknown.stderr.strip() == "Error: no user 'zeca'"


def test_a_password_hashed_with_older_parameters_opens_the_console_and_is_hashed_again(console):
    """Hashes made before the console took OWASP's 19 MiB argon2id (the library's default holds 64
    MB a login) still open it, and the first login replaces them; the password stays the same."""
    from argon2 import PasswordHasher
    path = console.workdir / "state.json.users"
    data = json.loads(path.read_text())
    data["users"]["bia"]["password"] = PasswordHasher().hash(PASSWORD)
    path.write_text(json.dumps(data))
    with http(console) as client:
        http_login(client, "bia")
    kept = json.loads(path.read_text())["users"]["bia"]["password"]
    assert kept.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    with http(console) as client:
        http_login(client, "bia")
    assert json.loads(path.read_text())["users"]["bia"]["password"] == kept  # not hashed again


def test_the_cookie_is_secure_behind_a_trusted_tls_proxy_only(console):
    def session_cookie(headers: dict) -> str:
        with http(console) as client:
            form = client.get("/login", headers=headers)
            token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
            # a Secure cookie is not sent back over plain HTTP by httpx: what the proxy's TLS would carry
            pending = form.headers["set-cookie"].split(";")[0]
            answer = client.post("/login", data={"csrf": token, "nome": "ana", "senha": PASSWORD},
                                 headers={**headers, "Origin": "https://console.example", "Cookie": pending})
            return ", ".join(answer.headers.get_list("set-cookie"))

    with http(console) as client:  # an address claimed by a peer that is not our proxy is not believed
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        client.post("/login", data={"csrf": token, "nome": "ana", "senha": "errada-123456"},
                    headers={**origin(console), "X-Forwarded-For": "203.0.113.9"})
    assert console.records("login_failed")[-1]["client"] == "127.0.0.1"
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9", "Host": "console.example"}
    assert session_cookie(proxied) == ""  # an untrusted proxy's https is not believed: the origin is not ours
    console.restart(trusted_proxies=["127.0.0.1"])
    cookie = session_cookie(proxied)
    assert "nw_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert console.records("login")[-1]["client"] == "203.0.113.9"


def test_pages_carry_a_csp_and_no_inline_script(console):
    with http(console) as client:
        pages = [client.get("/login")]
        http_login(client, "ana")
        pages += [client.get("/"), client.get("/configuracao")]
        static = client.get("/static/htmx.min.js")
    assert "no-store" not in static.headers.get("cache-control", "") and static.headers["x-content-type-options"] == "nosniff"
    for answer in pages:
        # Pages hold customer data: never in a shared cache, never sniffed into another type.
        assert answer.headers["cache-control"] == "no-store" and answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
        policy = dict(d.strip().split(" ", 1) for d in answer.headers["content-security-policy"].split(";"))
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'" and policy["object-src"] == "'none'"
        assert not re.search(r"<script(?![^>]*\ssrc=)", answer.text), answer.url
        assert not re.search(r"\son[a-z]+=", answer.text), answer.url


def test_the_console_unit_passes_systemd_analyze_verify_and_runs_notifier_web(tmp_path, cli):
    import shutil
    import subprocess
    from tests.conftest import ROOT
    unit = (ROOT / "deploy" / "notifier-web.service").read_text()
    [start] = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    program, *args = start.split()
    assert args[:2] == ["--env-file", "/etc/notifier/.env"] and args[2:] == ["web", "--host", "127.0.0.1", "--port", "8080"]
    cli(*args[2:], "--help")  # a real command with real options
    fake = tmp_path / "notifier"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    copy = tmp_path / "notifier-web.service"
    copy.write_text(unit.replace(program, str(fake)))
    proc = subprocess.run([shutil.which("systemd-analyze"), "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "notifier-web.service" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_the_documented_docker_command_of_the_console_is_a_real_command(cli):
    from tests.conftest import ROOT
    for text in ((ROOT / "Dockerfile").read_text(), (ROOT / "README.md").read_text()):
        found = re.search(r"dunning-notifier (notifier web --host 0\.0\.0\.0)", text)
        assert found, "no `notifier web --host 0.0.0.0` documented"
        cli(*found.group(1).split()[1:], "--help")


def test_the_readmes_one_command_starts_the_console_on_the_example_with_a_first_admin(tmp_path, browser):
    import shlex
    import shutil
    import subprocess
    import sys
    from tests.conftest import ROOT, clean_cli
    from tests.web_helpers import Console
    [line] = [l for l in (ROOT / "README.md").read_text().splitlines() if l.startswith("python run.py users add admin")]
    add, serve = (shlex.split(part) for part in line.split("&&"))
    shutil.copy(ROOT / "state.json.example", tmp_path / "state.json")  # the set-up's first command
    cli = clean_cli(tmp_path)
    subprocess.run([sys.executable, str(ROOT / "run.py"), *add[2:]], cwd=tmp_path, env=cli.env, check=True,
                   input=f"{PASSWORD}\n", capture_output=True, text=True, timeout=60)
    server = Console(tmp_path, cli, {}, day=serve[serve.index("--date") + 1])
    assert serve[2:] == ["web", "--date", server.day]  # started below as written, on a free port
    server.start()
    try:
        page = browser.new_page()
        login(page, server, "admin")
        assert page.locator("h1").inner_text().startswith("Painel 24/11/2026")
    finally:
        server.stop()


def test_a_damaged_users_file_is_one_clear_error_at_start(cli, tmp_path):
    from tests.conftest import ROOT
    import shutil
    shutil.copy(ROOT / "state.json.example", tmp_path / "state.json")
    (tmp_path / "state.json.users").write_text('{"users": {"ana": {"role": "admin"}}}')
    proc = cli("web", "--port", str(free_port()), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: state.json.users: not a users file (bad record:"), proc.stderr
    listed = cli("users", "list", check=False)
    assert listed.returncode == 1 and listed.stderr.startswith("Error: state.json.users: not a users file")


def test_a_refused_user_name_comes_back_escaped(console):
    with http(console) as client:
        token = http_login(client, "ana")
        hostile = "<img src=x onerror=alert(1)>"
        answer = client.post("/configuracao/usuarios", headers=origin(console),
                             data={"csrf": token, "nome": hostile, "papel": "support", "senha": "senha-longa-123"})
    assert answer.status_code == 422
    assert "&#39;&lt;img src=x onerror=alert(1)&gt;&#39;: a user name is" in answer.text and hostile not in answer.text
