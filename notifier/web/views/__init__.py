"""What every view shares: the Jinja2 environment and its Brazilian formats, and `page()`.

Everything a person reads is pt-BR: dates dd/mm/aaaa, money R$ 1.234,56, times in the configured
zone (America/Sao_Paulo). Autoescape is on for every template; customer text goes through the
`texto` filter as well, which isolates it (`<bdi>`) and shows bidi control characters as their
code, so a name cannot reorder the text around it.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from notifier.reports.exports import br_datetime
from notifier.run.render import br_date, brl
from notifier.staff.actor import INVISIBLE

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_INVISIBLE = re.compile("[" + "".join(sorted(INVISIBLE)) + "]")


def texto(value) -> Markup:
    """Customer text, escaped, in its own bidi island, its control characters made visible."""
    if value is None or value == "":
        return Markup("")
    shown = _INVISIBLE.sub(lambda m: f"\x00U+{ord(m.group()):04X}\x01", str(value))  # in C: every name on a page
    safe = str(escape(shown)).replace("\x00", '<span class="ctl">').replace("\x01", "</span>")
    return Markup(f"<bdi>{safe}</bdi>")


CHANNEL_NAMES = {"email": "E-mail", "whatsapp": "WhatsApp", "sms": "SMS", "social": "Redes sociais", "staff": "Equipe"}


def data(value) -> str:
    """dd/mm/aaaa from a date, a datetime or an ISO text; "-" for none."""
    if not value:
        return "-"
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return br_date(value if not isinstance(value, datetime) else value.date())


def _environment() -> Environment:
    # auto_reload off: the templates are the installed package's and change only with a new
    # release (and a restart); checking each one's mtime on every page cost a stat per template
    # per request, 1.5% of the console's time under load.
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters.update(texto=texto, data=data, brl=brl, hora=br_datetime,
                       canal=lambda name: CHANNEL_NAMES.get(name, name),  # hora: a log time (UTC) | hora(tz)
                       numero=lambda n: f"{n:,}".replace(",", "."))  # 1.234 messages
    return env


ENV = _environment()


def page(request: Request, login, template: str, status: int = 200, **context) -> HTMLResponse:
    """`template` rendered for `login` (None on the login pages), with the menu's and forms' needs."""
    web = request.app.state.web
    html = ENV.get_template(template).render(
        request=request, login=login, csrf=login.session.csrf if login else context.pop("csrf", ""),
        may=(lambda action: login is not None and login.may(action)), path=request.url.path,
        company=web.config.company.name, tz=web.config.tz, **context)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, login, status: int, reason: str) -> HTMLResponse:
    titles = {403: "Acesso negado", 404: "Página não encontrada", 500: "Erro interno"}
    return page(request, login, "error.html", status=status, reason=reason, title=titles.get(status, "Erro"))


def forbidden_page(request: Request, login, reason: str) -> HTMLResponse:
    return error_page(request, login, 403, reason)

