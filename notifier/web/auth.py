"""Who is asking: sessions, login with password and TOTP, lockout, CSRF.

Sessions live in the console's memory (a restart logs everyone out), keyed by a random cookie
that is HttpOnly, SameSite=Strict and Secure behind TLS. On every request the session is checked
against the user's record in the users file (a `stat`, and a re-read only when the file changed):
`notifier users disable` in another process ends the session at its next request.

Every POST is checked twice against cross-site requests: its Origin/Sec-Fetch-Site must be our
own (`origin_ok`, for every POST before any view runs) and it must carry the session's token
(`require`, or the login form's own token).
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import pyotp
from starlette.requests import Request

from notifier.staff.actor import InvalidText, neutralise

from . import permissions
from .users import (LOCK_FOR, MAX_FAILED, Actor, User, UserStore, hash_code, hash_password, needs_rehash, password_ok,
                    record, utc_now)

SESSION_COOKIE = "nw_session"
LOGIN_COOKIE = "nw_login"  # the login form's CSRF token, and the login waiting for its second factor
PENDING_FOR = 300  # seconds between the password and the TOTP code


@dataclass
class Session:
    name: str
    generation: int
    client: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: float = field(default_factory=time.monotonic)


@dataclass
class Pending:
    """A login between its two steps: the password was right, the second factor is still due."""
    name: str
    csrf: str
    since: float = field(default_factory=time.monotonic)
    new_secret: str | None = None  # set when the user must set up TOTP (an admin made it mandatory)


class Sessions:
    """Open sessions and half-done logins, in memory, ended after `idle` seconds unused."""

    def __init__(self, idle: float):
        self.idle = idle
        self._open: dict[str, Session] = {}
        self._pending: dict[str, Pending] = {}
        # Views run in the threadpool too (views/customers.py): one change at a time.
        self._lock = threading.Lock()

    def start(self, user: User, client: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._open[token] = session = Session(user.name, user.generation, client)
        return token, session

    def get(self, token: str | None) -> Session | None:
        with self._lock:
            session = self._open.get(token or "")
            now = time.monotonic()
            if session is None or now - session.seen > self.idle:
                self._open.pop(token or "", None)
                return None
            session.seen = now
            return session

    def end(self, token: str | None) -> Session | None:
        with self._lock:
            return self._open.pop(token or "", None)

    def pending(self, token: str | None) -> Pending | None:
        """The login form's state of this browser; a fresh one (new token) when it has none."""
        with self._lock:
            p = self._pending.get(token or "")
            if p is not None and time.monotonic() - p.since > PENDING_FOR:
                self._pending.pop(token or "")
                p = None
            return p

    def new_pending(self) -> tuple[str, Pending]:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._pending[token] = p = Pending(name="", csrf=secrets.token_urlsafe(32))
            if len(self._pending) > 10_000:  # forms opened and never sent: drop the oldest
                self._pending.pop(next(iter(self._pending)))
        return token, p

    def drop_pending(self, token: str | None) -> None:
        with self._lock:
            self._pending.pop(token or "", None)


# --- where the request comes from -------------------------------------------------------------

def _via_proxy(request: Request) -> bool:
    return request.client is not None and request.client.host in request.app.state.web.config.web.trusted_proxies


def client_address(request: Request) -> str:
    """The browser's address: the proxy's X-Forwarded-For last hop when the proxy is trusted."""
    if _via_proxy(request) and request.headers.get("x-forwarded-for"):
        return request.headers["x-forwarded-for"].split(",")[-1].strip()
    return request.client.host if request.client else "?"


def behind_tls(request: Request) -> bool:
    if request.app.state.web.config.web.secure_cookies or request.url.scheme == "https":
        return True
    return _via_proxy(request) and request.headers.get("x-forwarded-proto") == "https"


def origin_ok(request: Request) -> bool:
    """The request comes from a page of ours: the browser's Sec-Fetch-Site says so, or (a browser
    that does not send it) its Origin is ours. A POST with neither is refused."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    own = f"{'https' if behind_tls(request) else request.url.scheme}://{request.headers.get('host', '')}"
    return origin is not None and origin == own


def token_ok(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected.encode(), given.encode())


# --- who is logged in ---------------------------------------------------------------------------

class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to /login."""


class Forbidden(Exception):
    """The role may not do this, or the POST's token is missing: the page answers 403."""

    def __init__(self, reason: str):
        self.reason = reason


@dataclass(frozen=True)
class Login:
    """The person behind a request, as the views see them."""
    user: User
    session: Session
    client: str

    @property
    def actor(self) -> Actor:
        return Actor(self.user.name, self.user.role, self.client)

    def may(self, action: str) -> bool:
        return permissions.may(self.user.role, action)


def current(request: Request) -> Login | None:
    """The session's user, checked against the users file now: disabled, deleted or changed (a
    new generation) ends the session."""
    web = request.app.state.web
    token = request.cookies.get(SESSION_COOKIE)
    session = web.sessions.get(token)
    if session is None:
        return None
    user = web.users.get(session.name)
    if user is None or user.disabled or user.generation != session.generation:
        web.sessions.end(token)
        return None
    return Login(user, session, client_address(request))


def require(action: str):
    """A FastAPI dependency: the logged-in person, allowed to do `action`; on a POST, with the
    session's CSRF token (form field `csrf` or header X-CSRF-Token, which app.js adds to htmx's)."""
    async def dependency(request: Request) -> Login:
        login = current(request)
        if login is None:
            raise LoginRequired()
        if not login.may(action):
            raise Forbidden("O seu perfil não permite esta ação.")
        if request.method == "POST":
            given = request.headers.get("x-csrf-token") or (await request.form()).get("csrf")
            if not token_ok(login.session.csrf, given):
                raise Forbidden("O formulário expirou ou não veio desta página. Recarregue a página e tente de novo.")
        return login
    return dependency


# --- logging in ---------------------------------------------------------------------------------

class LoginRefused(Exception):
    """A login that did not succeed; the message is what the person reads."""


_counting = threading.Lock()  # failed tries are read, then written: one login at a time counts


def check_password(web, name: str, password: str, client: str) -> User:
    """The user `name` if `password` is theirs and they may log in; else LoginRefused, a failed
    try counted towards the lock, and a record in the log (never the password). Runs in the
    threadpool (argon2id is slow); logins are checked one at a time, so that parallel tries
    cannot count as one."""
    with _counting:
        return _check_password(web, name, password, client)


def _check_password(web, name: str, password: str, client: str) -> User:
    users, log = web.users, web.log
    user = users.get(name)
    now = utc_now()
    if user is not None and user.locked(now):
        _failed(log, name, user, client, "locked")
        raise LoginRefused(_locked_text(user, web.config.tz))
    if not password_ok(user, password):
        user = _count_failure(users, log, name, user, client, "wrong password")
        raise LoginRefused(_locked_text(user, web.config.tz) if user and user.locked(now) else "Nome ou senha incorretos.")
    if user.disabled:
        _failed(log, name, user, client, "disabled")
        raise LoginRefused("Este usuário está desativado. Fale com um administrador.")
    if needs_rehash(user):  # the password is known right now: hashed again with today's parameters
        user = users.update(user.name, password=hash_password(password))
    return user


def check_second_factor(web, user: User, code: str, client: str) -> User:
    """`code` is the user's current TOTP code (not used before) or one of their recovery codes,
    which is then spent."""
    users, log = web.users, web.log
    if user.locked(utc_now()):
        _failed(log, user.name, user, client, "locked")
        raise LoginRefused(_locked_text(user, web.config.tz))
    code = code.strip().replace(" ", "")
    step = totp_step(user.totp, code) if user.totp else None
    if step is not None and step > user.totp_last:
        return users.update(user.name, totp_last=step)
    hashed = hash_code(code)
    if len(code) > 6 and hashed in user.recovery:
        user = users.update(user.name, recovery=tuple(h for h in user.recovery if h != hashed))
        record(log, Actor(user.name, user.role, client), "recovery_code_used", left=len(user.recovery))
        return user
    user = _count_failure(users, log, user.name, user, client, "wrong code")
    raise LoginRefused(_locked_text(user, web.config.tz) if user.locked(utc_now()) else "Código incorreto ou já usado.")


def totp_step(secret: str, code: str) -> int | None:
    """The time step whose code `code` is, within a step either side (a phone's clock drifts)."""
    totp, now = pyotp.TOTP(secret), datetime.now()
    for offset in (0, -1, 1):
        if secrets.compare_digest(totp.at(now, counter_offset=offset), code):
            return totp.timecode(now) + offset
    return None


def _count_failure(users: UserStore, log, name: str, user: User | None, client: str, reason: str) -> User | None:
    if user is not None:
        failed = user.failed + 1
        locked = (utc_now() + LOCK_FOR).isoformat(timespec="seconds") if failed >= MAX_FAILED else user.locked_until
        user = users.update(name, failed=0 if failed >= MAX_FAILED else failed, locked_until=locked)
        if failed >= MAX_FAILED:
            record(log, Actor(name, user.role, client), "user_locked", until=locked, tries=MAX_FAILED)
    _failed(log, name, user, client, reason)
    return user


def _failed(log, name: str, user: User | None, client: str, reason: str) -> None:
    """A failed login, signed with the name typed; a name no user could have (empty, a bidi
    control, 5,000 characters) is kept shortened and made visible under `typed`."""
    try:
        actor, typed = Actor(name, user.role if user else "", client), {}
    except InvalidText:
        actor, typed = Actor("?", "", client), {"typed": neutralise(name[:80])}
    record(log, actor, "login_failed", reason=reason, known_user=user is not None, **typed)


def _locked_text(user: User, tz) -> str:
    until = datetime.fromisoformat(user.locked_until).astimezone(tz)
    return (f"Muitas tentativas erradas: este usuário está bloqueado até as {until:%H:%M}. "
            f"Tente de novo depois, ou peça a um administrador.")


def logged_in(web, user: User, client: str) -> None:
    """A successful login: the failed tries start again from zero; recorded."""
    if user.failed or user.locked_until:
        web.users.update(user.name, failed=0, locked_until=None)
    record(web.log, Actor(user.name, user.role, client), "login", totp=bool(user.totp))

