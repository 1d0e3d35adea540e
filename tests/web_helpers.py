"""The console under test: a real `python run.py web` process on 127.0.0.1 over a temporary state,
and a real browser (Debian's Chromium driven by Playwright). Shared by every console test.

    from tests.web_helpers import login, shoot  # the fixtures come from conftest (pytest_plugins)

    def test_something(console, browser):
        page = browser.new_page()
        login(page, console, "ana")
        shoot(page, "painel")          # tests/artifacts/screenshots/painel-1280.png and -390.png

`console` is a `Console`: `.url`, `.cli` (the same `python run.py` on the same state), `.workdir`,
`.add_user(name, role, totp=False)` (through the CLI, the password on stdin; returns the TOTP
secret when asked for one), `.records(event)` (the attempt log's records), `.restart(**config)`.
A test that needs other data writes `state.json` in `console.workdir` before its first request
(`console.put_state(...)`), or imports through `console.cli`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Cli, clean_cli

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
PASSWORD = "senha-de-teste-123"  # every test user's password
WIDTHS = (1280, 390)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Console:
    """One console process over its own state, log and config in `workdir`."""

    def __init__(self, workdir: Path, cli: Cli, web: dict, day: str = "2026-11-24"):
        self.workdir, self.cli, self.web, self.day = workdir, cli, web, day
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        lines = ["[web]"] + [f"{k} = {json.dumps(v)}" for k, v in self.web.items()]
        (self.workdir / "notifier.toml").write_text("\n".join(lines) + "\n")

    def start(self) -> "Console":
        self.write_config()
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "web", "--port", str(self.port), "--date", self.day],
            cwd=self.workdir, env=self.cli.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the console exited {self.proc.returncode}:\n{self.proc.stdout.read()}")
            try:
                httpx.get(self.url + "/login", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the console did not answer within 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, **web) -> "Console":
        self.stop()
        self.web.update(web)
        return self.start()

    def users(self, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
        """`notifier users ARGS` on this console's state, `password` on its stdin."""
        return subprocess.run([sys.executable, str(ROOT / "run.py"), "users", *args], cwd=self.workdir,
                              env=self.cli.env, input=(password + "\n") if password is not None else "",
                              capture_output=True, text=True, timeout=60)

    def add_user(self, name: str, role: str, totp: bool = False, password: str = PASSWORD) -> str | None:
        """A user added as `notifier users add` does (the library call, in this process: no Python
        start-up per user); returns the TOTP secret when asked for one."""
        from notifier.log.attempts import AttemptLog
        from notifier.web import users
        log = AttemptLog(self.workdir / "attempts.jsonl")
        try:
            user, _ = users.add_user(users.UserStore(self.workdir / "state.json.users"), log,
                                     users.Actor("test", "cli", "terminal"), name, role, password, totp=totp)
        finally:
            log.close()
        return user.totp

    def put_state(self, state: dict) -> None:
        (self.workdir / "state.json").write_text(json.dumps(state))

    def records(self, event: str | None = None) -> list[dict]:
        path = self.workdir / "attempts.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [r for r in map(json.loads, lines) if event is None or r["event"] == event]


@pytest.fixture(scope="session")
def console_files(tmp_path_factory) -> Path:
    """The example state with the users ana, bia and caio, made once per test process and copied
    for each console: each user's argon2 hash costs a quarter of a second of CPU."""
    folder = tmp_path_factory.mktemp("console-files")
    shutil.copy(ROOT / "state.json.example", folder / "state.json")
    server = Console(folder, clean_cli(folder), {})
    for name, role in (("ana", "admin"), ("bia", "support"), ("caio", "finance")):
        server.add_user(name, role)
    return folder


@pytest.fixture
def console(tmp_path, console_files):
    """A console on a copy of the example state, with the users ana (admin), bia (support) and
    caio (finance); config `[web]` keys may be changed with `console.restart(idle_minutes=...)`."""
    shutil.copytree(console_files, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.lock"))
    cli = clean_cli(tmp_path)
    cli.env["NOTIFIER_CONFIG"] = str(tmp_path / "notifier.toml")
    server = Console(tmp_path, cli, {})
    server.write_config()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    # A missing browser fails the console's tests instead of skipping them: a skip proves nothing.
    assert os.path.exists(CHROMIUM), "Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser(chromium):
    """A fresh browser context (no cookies) per test; `browser.new_page()` gives a tab."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="pt-BR")
    context.set_default_timeout(30_000)  # a loaded 2-core machine
    yield context
    context.close()


def login(page, console: Console, name: str, password: str = PASSWORD, code: str | None = None) -> None:
    page.goto(console.url + "/login")
    page.fill("input[name=nome]", name)
    page.fill("input[name=senha]", password)
    page.click("button[type=submit]")
    if code is not None:
        page.fill("input[name=codigo]", code)
        page.click("button[type=submit]")


def shoot(page, name: str) -> None:
    """Full-page screenshots of the current page at 1280 and 390 px wide (tests/artifacts/, gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def http(console: Console) -> httpx.Client:
    """A plain HTTP client for what a browser would not send (a cross-site POST, a forged role)."""
    return httpx.Client(base_url=console.url, follow_redirects=False, timeout=30)


def http_login(client: httpx.Client, name: str, password: str = PASSWORD) -> str:
    """Log `client` in as a same-origin form would; returns the session's CSRF token."""
    form = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = client.post("/login", data={"csrf": token, "nome": name, "senha": password},
                         headers={"Origin": client.base_url.scheme + "://" + client.base_url.netloc.decode()})
    assert answer.status_code == 303, answer.text
    panel = client.get("/")
    return re.search(r'name="csrf-token" content="([^"]+)"', panel.text).group(1)
