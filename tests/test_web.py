"""The console's foundation as its users meet it: a real `notifier web` process and a real browser
(Chromium) or plain HTTP; login, sessions, roles, CSRF, escaping. Fixtures: tests/web_helpers.py."""
from __future__ import annotations

import re

import pyotp

from tests.web_helpers import PASSWORD, browser, chromium, console, http, http_login, login, shoot  # noqa: F401


def test_login_shows_the_panel_with_the_menu_of_the_role(console, browser):
    page = browser.new_page()
    page.goto(console.url + "/")
    assert page.url.endswith("/login")  # not logged in: to the login page
    shoot(page, "login")
    login(page, console, "ana")
    assert page.url == console.url + "/"
    assert page.locator("h1").inner_text() == "Painel"
    assert page.locator("nav.menu a").all_inner_texts() == ["Painel", "Clientes", "Tarefas", "Configuração"]
    shoot(page, "painel")
    login_record = console.records("login")[-1]
    assert (login_record["actor"], login_record["role"], login_record["client"]) == ("ana", "admin", "127.0.0.1")
    page.click("text=Sair")
    assert page.url.endswith("/login")
