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

import ctypes
import gc
import threading
import time
from datetime import date, datetime
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from notifier.config import Config
from notifier.log.attempts import AttemptLog
from notifier.log.verified import ChainCheck
from notifier.run.kept import KeptForecast
from notifier.run.checkup import channel_statuses_apart
from notifier.run.render import Renderer
from notifier.state.store import Store

from . import api, auth
from .users import UserStore, users_path
from .views import (audit, customers, error_page, forbidden_page, login, panel, payments, registro, reports, settings,
                    tasks)

HERE = Path(__file__).parent
CHANNELS_KEPT = 300  # seconds the Painel shows the same channels' statuses (Configuração asks afresh)
# No inline script or style anywhere: a customer's text that slipped through unescaped still
# could not run. Frames only of our own pages (the e-mail as the customer saw it, sandboxed).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def fewer_malloc_arenas() -> None:
    """Make glibc's allocator keep two heaps ("arenas") instead of up to eight per core: by default
    each thread that allocates gets its own, and the console's requests run on a pool of up to 40
    threads, each leaving its arena holding what the big parses it did (a state of 50,000 accounts
    read again after the cycle wrote it) freed but not returned: the process's resident memory grew
    to several times what it keeps. Called before any thread starts; nothing where libc is not glibc.

    And a block of 256 KB or more (the tables of a state version: a copy of the invoices' dict is
    10 MB, made at each payment) always gets its own mapping, given back whole when freed: by
    default glibc raises that threshold to the size of the largest block freed, after which such
    copies came from the heap and their freed space stayed resident between versions."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX
        libc.mallopt(-3, 256 << 10)  # M_MMAP_THRESHOLD (set: no longer moved by what is freed)
    except (OSError, AttributeError):
        pass


def give_back_free_memory() -> None:
    """Return the heap's free pages to the system (glibc's malloc_trim): after the start-up's
    one-time work (the indexes' builds leave hundreds of megabytes freed)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class ConsoleStore(Store):
    """The state store as the console's request threads share it: when the file changed (the
    cycle, a command, another action wrote it), the first thread to ask reads it and the others
    wait for that read instead of each parsing the whole file at once: at 50,000 accounts each
    parse holds a few hundred megabytes while it runs, and ten sessions asking together held
    gigabytes. An unchanged file costs the lock and a stat."""

    def __init__(self, *args, on_new_base: Callable[[], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._reading = threading.Lock()
        self._trimming = threading.Lock()  # one trim at a time: a version that comes meanwhile shares it
        self._tables: tuple = ()  # the ids of the big tables of the last version read (not the tables: kept alive)
        self._on_new_base = on_new_base

    def snapshot(self):
        with self._reading:
            if self._on_new_base is not None and self.rewritten():
                # Let go of the old version before the new one is parsed, not after: the two
                # together were the console's highest memory of a day (316 MB at 50,000 accounts).
                self.forget()
                self._on_new_base()
            snap = super().snapshot()
            tables = tuple(map(id, snap.tables("accounts", "invoices", "history", "ledger")))
            new = tables != self._tables
            self._tables = tables
        if new:
            # A new version read: what its parse freed goes back to the system, not kept by the
            # allocator for the next one. In a thread of its own, outside the lock: a trim takes
            # tens of milliseconds, and during a cycle a new version comes every few seconds;
            # the requests that want the snapshot meanwhile do not wait for it.
            self._trim()
        return snap

    def _trim(self) -> None:
        if self._trimming.acquire(blocking=False):
            def trim():
                try:
                    give_back_free_memory()
                finally:
                    self._trimming.release()
            threading.Thread(target=trim, name="trim", daemon=True).start()


class Web:
    """What every view reaches through `request.app.state.web`."""

    def __init__(self, config: Config, day: date | None = None):
        self.config = config
        self.day = day
        self.users = UserStore(users_path(config.state))
        self.sessions = auth.Sessions(idle=config.web.idle_minutes * 60)
        self.log = AttemptLog(config.attempt_log)
        # keep_written: an action's page is drawn from what its write wrote, not a second parse
        # fold=False: a fold would double the console's memory for a moment; the daemon folds
        # packed_ledger: the ledger (most of the state) packed by account, unpacked when asked
        # on_new_base: the state rewritten whole (an import, an archive): what is kept of the old one is let go
        self.store = ConsoleStore(config.state, retention_months=config.retention_months, log=self.log,
                                  keep_written=True, journal_from=config.journal_from, fold=False,
                                  packed_ledger=True, on_new_base=self._let_go)
        self.chain = ChainCheck(self.log, self.now)  # the audit's chain check: whole once, then what was appended
        self._renderer: Renderer | None = None
        self._renderer_lock = threading.Lock()
        self._forecast = KeptForecast()  # each account's part kept across versions of the state
        self._channels: tuple[float, list] | None = None  # (when, statuses): `channel_statuses`
        self._channels_lock = threading.Lock()

    @property
    def renderer(self) -> Renderer:
        """One renderer for the process: it compiles and checks the templates once (most of a
        second), not on every Configuração page or escalation; built by the first thread to ask."""
        if self._renderer is None:
            with self._renderer_lock:
                if self._renderer is None:
                    self._renderer = Renderer(self.config)
        return self._renderer

    def forecast(self, start: date, days: int) -> list:
        """`store_forecast` over the state as it is (what `notifier forecast` prints), each
        account's part kept (notifier/run/kept.py): after a write only the accounts it touched
        are planned again, and an unchanged state gives the same rows at once (Relatórios and
        its CSV ask for the same forecast far more often than the state changes)."""
        return self._forecast.forecast(self.store.snapshot(), self.config, start, days)

    def channel_statuses(self, fresh: bool = False) -> list:
        """The channels' statuses (`notifier check` without connecting), worked out by a child
        process (`channel_statuses_apart`: the apprise plugins stay out of the console), kept
        for CHANNELS_KEPT seconds for the Painel, where every login lands; `fresh` for the
        Configuração page, where an admin looks after changing something."""
        with self._channels_lock:
            kept = self._channels
            if fresh or kept is None or time.monotonic() - kept[0] > CHANNELS_KEPT:
                kept = self._channels = (time.monotonic(), channel_statuses_apart(self.config))
            return kept[1]

    def _let_go(self) -> None:
        """When the state was rewritten whole (an import, an archive: every table a new object),
        drop what the console kept of the old version (the plans and the forecast per account,
        the Painel's sums, the search index), which would hold its 100 MB until each was next
        asked for (the forecast: at the next Relatórios view, maybe hours later), and warm up
        again on the new one in a thread, as at start (it waits for the new version's read)."""
        from notifier.staff.search import forget as forget_search
        from .views.panel import forget as forget_panel
        from .views.reports import forget as forget_reports
        self._forecast = KeptForecast()
        forget_panel()
        forget_reports()
        forget_search()
        gc.collect()  # a kept plan refers to itself (its parts' method): only the collector frees it
        threading.Thread(target=self.warm, name="warm-up", daemon=True).start()

    def warm(self) -> None:
        """Do the one-time work of the first pages before anyone asks (`notifier web` calls it in
        a thread at start): the renderer (its templates compiled and checked: the Configuração
        page's list of problems, half a second), the console's own templates, the log index (one
        read of the whole log), the search index of the accounts, the next cycle's plan (the
        Painel's) and the 30 days' forecast (Relatórios': 20 s of CPU at 50,000 accounts; kept per
        account, a write then re-plans only what it touched), the whole chain's check. A failure is left for the page
        that needs it to report."""
        from notifier.log.index import index_for
        from notifier.reports.audit import environment as audit_environment
        from notifier.staff.search import index_of
        from .views import ENV
        from .views.panel import next_cycle_plan
        from .views.reports import FORECAST_DAYS
        try:
            self.renderer.check()
            for name in ENV.list_templates(filter_func=lambda n: n.endswith(".html")):
                ENV.get_template(name)
            index_of(self.store.snapshot())
            give_back_free_memory()  # what the state's read freed, before the log index is built
            next_cycle_plan(self)  # the Painel's, where every login lands
            self.channel_statuses()  # the Painel's too
            index_for(self.config.attempt_log, self.config.tz).task_list()
            self.forecast(self.now().date(), FORECAST_DAYS)  # Relatórios'
            give_back_free_memory()
            self.chain.verdict()  # the whole chain, once: an audit report then checks what was appended
            audit_environment().get_template("audit.html")
        except Exception:  # noqa: BLE001 - the page that needs it says what is wrong
            pass
        give_back_free_memory()

    def now(self) -> datetime:
        """Now in the configured zone; on the day given to `notifier web --date` (a demo, a test)."""
        now = datetime.now(self.config.tz)
        return now if self.day is None else datetime.combine(self.day, now.timetz())


class Guard:
    """Every answer's security headers, and a POST from a page of another site refused.

    A plain ASGI middleware, not `@app.middleware("http")`: that one sends each request through a
    task and a stream of its own, turns of the event loop that a search then waits for, behind
    the other requests' work, to be allowed to run (the interpreter runs one thread at a time)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        private = not scope["path"].startswith("/static/")

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)  # a view may set a stricter one
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                if private:
                    headers["Cache-Control"] = "no-store"  # pages hold customer data: not in a shared cache
            await send(message)

        if scope["method"] not in ("GET", "HEAD"):
            request = Request(scope)
            # The API takes no cookie (a bearer token only): a script's POST has no Origin to check.
            if not api.is_api(request) and not auth.origin_ok(request):
                refused = forbidden_page(request, None, "Pedido recusado: ele não veio de uma página deste console.")
                return await refused(scope, receive, with_headers)
        await self.app(scope, receive, with_headers)


def build(config: Config, day: date | None = None) -> FastAPI:
    app = FastAPI(title="Dunning notifier console", docs_url=None, redoc_url=None)
    app.state.web = Web(config, day)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    app.add_middleware(Guard)

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
        """A page in Portuguese for an unknown address or method, instead of FastAPI's JSON; on
        /api, the API's JSON error."""
        if api.is_api(request):
            return api.error(exc.status_code, "no such endpoint" if exc.status_code == 404 else str(exc.detail).lower())
        text = "Página não encontrada." if exc.status_code == 404 else "Pedido inválido."
        return error_page(request, auth.current(request), exc.status_code, text)

    @app.exception_handler(api.ApiError)
    async def api_error(_request: Request, exc: api.ApiError):
        return api.error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        if api.is_api(request):
            return api.validation_error(exc)
        return await request_validation_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def bug(request: Request, _exc: Exception):
        """A bug: a page that says so (uvicorn still logs the traceback for the operator)."""
        if api.is_api(request):
            return api.error(500, "internal error of the console; it was logged for the operators")
        return error_page(request, None, 500, "Erro interno do console. O erro foi registrado; tente de novo ou "
                                              "avise a equipe de operações.")

    app.include_router(api.router)
    app.openapi = lambda: api.schema(app)  # the API's routes only: the HTML pages are not an API
    app.get("/login")(login.form)
    app.post("/login")(login.submit)
    app.get("/login/2fa")(login.second_form)
    app.post("/login/2fa")(login.second_submit)
    app.post("/logout")(login.logout)
    app.get("/")(panel.show)
    app.get("/clientes")(customers.search)
    app.get("/clientes/{account_id}")(customers.show)
    app.get("/clientes/{account_id}/mensagens/{attempt_id}")(customers.message)
    app.get("/clientes/{account_id}/auditoria")(audit.legacy)
    app.post("/clientes/{account_id}/escalar")(customers.escalate)
    app.post("/clientes/{account_id}/contato")(customers.contact)
    app.post("/clientes/{account_id}/pausar")(customers.hold)
    app.post("/clientes/{account_id}/liberar")(customers.release)
    app.post("/clientes/{account_id}/opt-out")(customers.stop_channel)
    app.post("/clientes/{account_id}/pagamento")(customers.pay)
    app.get("/tarefas")(tasks.show)
    app.post("/tarefas/{task_id}/concluir")(tasks.close)
    app.post("/tarefas/{task_id}/assumir")(tasks.assign)
    app.get("/registro")(registro.show)
    app.get("/registro.csv")(registro.export)
    app.get("/registro/verificar")(registro.verify_page)
    app.post("/registro/verificar")(registro.verify_start)
    app.get("/registro/verificar/progresso")(registro.verify_progress)
    app.get("/registro/{attempt_id}")(registro.record)
    app.get("/pagamentos")(payments.show)
    app.post("/pagamentos")(payments.submit)
    app.get("/auditoria")(audit.show)
    app.get("/auditoria/{account_id}.html")(audit.html)
    app.get("/auditoria/{account_id}.pdf")(audit.pdf)
    app.get("/auditoria/{account_id}.zip")(audit.appendix)
    app.get("/relatorios")(reports.show)
    app.get("/relatorios/mensal.csv")(reports.monthly_csv)
    app.get("/relatorios/previsao.csv")(reports.forecast_csv)
    app.get("/configuracao")(settings.show)
    app.post("/configuracao/usuarios")(settings.add_user)
    app.post("/configuracao/usuarios/{name}/desativar")(settings.disable_user)
    app.post("/configuracao/usuarios/{name}/2fa")(settings.reset_totp)
    app.post("/configuracao/2fa-obrigatorio")(settings.require_totp)
    app.post("/configuracao/usuarios/{name}/token")(settings.create_token)
    app.post("/configuracao/usuarios/{name}/token/revogar")(settings.revoke_token)
    return app
