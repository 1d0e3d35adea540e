"""The console's ASGI application: builds it from a `Config` and wires each URL to its view.

A view lives in `views/` (one module per kind of page) and is a small function: it receives the
`Login` of `auth.require(ACTION)` (which answers 403 when the role may not do ACTION, and checks a
POST's CSRF token), calls the same library function the CLI command calls, and renders a template.

Views that do blocking work (read the state or the log, write, call a provider, hash a password)
are plain `def`, or hand their work to `run_in_threadpool`: FastAPI runs them in its threadpool,
so an escalation to a slow SMTP server holds up its own request only, never the event loop. What
they share is safe between threads: the attempt log's writes take its thread lock
(`AttemptLog._threads`), the store's transactions its per-thread flock and its snapshot cache is
replaced whole, the log index and the search index have their locks, the sessions theirs.
"""
from __future__ import annotations

import threading
from datetime import date, datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from notifier.config import Config
from notifier.log.attempts import AttemptLog
from notifier.run.render import Renderer
from notifier.state.store import Store

from . import auth
from .users import UserStore, users_path
from .views import customers, error_page, forbidden_page, login, panel, settings, tasks

HERE = Path(__file__).parent
# No inline script or style anywhere: a customer's text that slipped through unescaped still
# could not run. Frames only of our own pages (the e-mail as the customer saw it, sandboxed).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class Web:
    """What every view reaches through `request.app.state.web`."""

    def __init__(self, config: Config, day: date | None = None):
        self.config = config
        self.day = day
        self.users = UserStore(users_path(config.state))
        self.sessions = auth.Sessions(idle=config.web.idle_minutes * 60)
        self.log = AttemptLog(config.attempt_log)
        # keep_written: an action's page is drawn from what its write wrote, not a second parse
        self.store = Store(config.state, retention_months=config.retention_months, log=self.log, keep_written=True,
                           journal_from=config.journal_from, fold=False)  # a fold would double its memory for a moment: the daemon folds
        self._renderer: Renderer | None = None
        self._renderer_lock = threading.Lock()

    @property
    def renderer(self) -> Renderer:
        """One renderer for the process: it compiles and checks the templates once (most of a
        second), not on every Configuração page or escalation; built by the first thread to ask."""
        if self._renderer is None:
            with self._renderer_lock:
                if self._renderer is None:
                    self._renderer = Renderer(self.config)
        return self._renderer

    def warm(self) -> None:
        """Do the one-time work of the first pages before anyone asks (`notifier web` calls it in
        a thread at start): the renderer (its templates compiled and checked: the Configuração
        page's list of problems, half a second), the console's own templates, the log index (one
        read of the whole log), the search index of the accounts. A failure is left for the page
        that needs it to report."""
        from notifier.log.index import index_for
        from notifier.staff.search import index_of
        from .views import ENV
        try:
            self.renderer.check()
            for name in ENV.list_templates(filter_func=lambda n: n.endswith(".html")):
                ENV.get_template(name)
            index_of(self.store.snapshot())
            index_for(self.config.attempt_log).task_records()
        except Exception:  # noqa: BLE001 - the page that needs it says what is wrong
            pass

    def now(self) -> datetime:
        """Now in the configured zone; on the day given to `notifier web --date` (a demo, a test)."""
        now = datetime.now(self.config.tz)
        return now if self.day is None else datetime.combine(self.day, now.timetz())


def build(config: Config, day: date | None = None) -> FastAPI:
    app = FastAPI(title="Dunning notifier console", docs_url=None, redoc_url=None)
    app.state.web = Web(config, day)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method not in ("GET", "HEAD") and not auth.origin_ok(request):
            response = forbidden_page(request, None, "Pedido recusado: ele não veio de uma página deste console.")
        else:
            response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)  # a view may set a stricter one
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"  # pages hold customer data: not in a shared cache
        return response

    @app.exception_handler(auth.LoginRequired)
    async def to_login(request: Request, _exc):
        target = "/login"
        if request.headers.get("hx-request"):  # htmx follows this header instead of swapping the login page in
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(auth.Forbidden)
    async def refuse(request: Request, exc: auth.Forbidden):
        return forbidden_page(request, auth.current(request), exc.reason)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        """A page in Portuguese for an unknown address or method, instead of FastAPI's JSON."""
        text = "Página não encontrada." if exc.status_code == 404 else "Pedido inválido."
        return error_page(request, auth.current(request), exc.status_code, text)

    @app.exception_handler(Exception)
    async def bug(request: Request, _exc: Exception):
        """A bug: a page that says so (uvicorn still logs the traceback for the operator)."""
        return error_page(request, None, 500, "Erro interno do console. O erro foi registrado; tente de novo ou "
                                              "avise a equipe de operações.")

    app.get("/login")(login.form)
    app.post("/login")(login.submit)
    app.get("/login/2fa")(login.second_form)
    app.post("/login/2fa")(login.second_submit)
    app.post("/logout")(login.logout)
    app.get("/")(panel.show)
    app.get("/clientes")(customers.search)
    app.get("/clientes/{account_id}")(customers.show)
    app.get("/clientes/{account_id}/mensagens/{attempt_id}")(customers.message)
    app.get("/clientes/{account_id}/auditoria")(customers.audit)
    app.post("/clientes/{account_id}/escalar")(customers.escalate)
    app.post("/clientes/{account_id}/contato")(customers.contact)
    app.post("/clientes/{account_id}/pausar")(customers.hold)
    app.post("/clientes/{account_id}/liberar")(customers.release)
    app.post("/clientes/{account_id}/opt-out")(customers.stop_channel)
    app.post("/clientes/{account_id}/pagamento")(customers.pay)
    app.get("/tarefas")(tasks.show)
    app.post("/tarefas/{task_id}/concluir")(tasks.close)
    app.post("/tarefas/{task_id}/assumir")(tasks.assign)
    app.get("/configuracao")(settings.show)
    app.post("/configuracao/usuarios")(settings.add_user)
    app.post("/configuracao/usuarios/{name}/desativar")(settings.disable_user)
    app.post("/configuracao/usuarios/{name}/2fa")(settings.reset_totp)
    app.post("/configuracao/2fa-obrigatorio")(settings.require_totp)
    return app
