"""/login, its second step (TOTP or a recovery code, or setting TOTP up when an admin made it
mandatory) and /logout. The login form's CSRF token lives with the browser's pending login."""
from __future__ import annotations

import pyotp
import segno
from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from .. import auth
from ..users import Actor, hash_code, new_recovery_codes, record
from . import page


def _pending(request: Request) -> tuple[str, auth.Pending]:
    sessions = request.app.state.web.sessions
    token = request.cookies.get(auth.LOGIN_COOKIE)
    pending = sessions.pending(token)
    return (token, pending) if pending else sessions.new_pending()


def _with_cookie(request: Request, response, name: str, value: str):
    response.set_cookie(name, value, httponly=True, samesite="strict", secure=auth.behind_tls(request), path="/")
    return response


async def form(request: Request, erro: str = ""):
    if auth.current(request):
        return RedirectResponse("/", status_code=303)
    token, pending = _pending(request)
    return _with_cookie(request, page(request, None, "login.html", csrf=pending.csrf, erro=erro), auth.LOGIN_COOKIE, token)


async def submit(request: Request):
    web = request.app.state.web
    fields = await request.form()
    token = request.cookies.get(auth.LOGIN_COOKIE)
    pending = web.sessions.pending(token)
    if pending is None or not auth.token_ok(pending.csrf, fields.get("csrf")):
        return await form(request, erro="O formulário expirou. Entre de novo.")
    name = str(fields.get("nome", "")).strip()
    try:
        # argon2id takes a good part of a second of CPU: in the threadpool, not the event loop.
        user = await run_in_threadpool(auth.check_password, web, name, str(fields.get("senha", "")),
                                       auth.client_address(request))
    except auth.LoginRefused as exc:
        response = page(request, None, "login.html", status=401, csrf=pending.csrf, erro=str(exc), nome=name)
        return response
    if user.totp or web.users.read().require_totp:
        pending.name = user.name
        pending.new_secret = None if user.totp else pyotp.random_base32()
        return RedirectResponse("/login/2fa", status_code=303)
    return await run_in_threadpool(_open_session, request, user, token)


async def second_form(request: Request, erro: str = "", status: int = 200):
    web = request.app.state.web
    pending = web.sessions.pending(request.cookies.get(auth.LOGIN_COOKIE))
    if pending is None or not pending.name:
        return RedirectResponse("/login", status_code=303)
    qr = None
    if pending.new_secret:
        uri = pyotp.TOTP(pending.new_secret).provisioning_uri(name=pending.name, issuer_name=web.config.company.name)
        qr = segno.make(uri).svg_data_uri(scale=4)
    return page(request, None, "login_2fa.html", status=status, csrf=pending.csrf, erro=erro,
                novo=pending.new_secret, qr=qr, nome=pending.name)


async def second_submit(request: Request):
    web = request.app.state.web
    fields = await request.form()
    token = request.cookies.get(auth.LOGIN_COOKIE)
    pending = web.sessions.pending(token)
    if pending is None or not pending.name or not auth.token_ok(pending.csrf, fields.get("csrf")):
        return RedirectResponse("/login", status_code=303)
    user = web.users.get(pending.name)
    client = auth.client_address(request)
    if user is None or user.disabled:
        return RedirectResponse("/login", status_code=303)
    code = str(fields.get("codigo", ""))
    try:
        if pending.new_secret:
            user, codes = _set_up_totp(web, user, pending.new_secret, code, client)
            # The recovery codes are shown once, on the first page of the new session.
            return _open_session(request, user, token, page(request, None, "recovery_codes.html", codigos=codes))
        user = auth.check_second_factor(web, user, code, client)
    except auth.LoginRefused as exc:
        return await second_form(request, erro=str(exc), status=401)
    return await run_in_threadpool(_open_session, request, user, token)


def _set_up_totp(web, user, secret: str, code: str, client: str):
    """The first code proves the phone holds `secret`; only then is it the user's."""
    step = auth.totp_step(secret, code.strip().replace(" ", ""))
    if step is None:
        raise auth.LoginRefused("Código incorreto. Confira o relógio do celular e tente de novo.")
    codes = new_recovery_codes()
    user = web.users.update(user.name, totp=secret, totp_last=step, recovery=tuple(hash_code(c) for c in codes))
    record(web.log, Actor(user.name, user.role, client), "user_2fa_set_up")
    return user, codes


def _open_session(request: Request, user, login_token: str | None, response=None):
    """The session starts: its cookie on `response` (default: a redirect to the Painel). In the
    threadpool: the users file and the log are written (and fsynced)."""
    web = request.app.state.web
    client = auth.client_address(request)
    web.sessions.drop_pending(login_token)
    auth.logged_in(web, user, client)
    token, _ = web.sessions.start(user, client)
    response = response or RedirectResponse("/", status_code=303)
    response.delete_cookie(auth.LOGIN_COOKIE, path="/")
    return _with_cookie(request, response, auth.SESSION_COOKIE, token)


async def logout(request: Request, login: auth.Login = Depends(auth.require("panel.view"))):
    web = request.app.state.web
    web.sessions.end(request.cookies.get(auth.SESSION_COOKIE))
    await run_in_threadpool(record, web.log, login.actor, "logout")  # a log append: off the event loop
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response
