"""Configuração (admin): the channels' status and why, missing templates, the users and their API
tokens (a new one shown once, as `notifier users token` prints it once)."""
from __future__ import annotations

import segno
from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from .. import auth, users
from ..users import ROLES, UserError
from . import page


def show(request: Request, login: auth.Login = Depends(auth.require("settings.view"))):
    return _render(request, login, fresh=True)


def _render(request: Request, login: auth.Login, status: int = 200, fresh: bool = False, **shown):
    """The page, with what the last action has to show (an error, a new user's TOTP secret); the
    channels checked again when the page is opened (`fresh`), as kept after an action."""
    web = request.app.state.web
    listed = web.users.read()
    return page(request, login, "settings.html", status=status, papeis=ROLES, exige_2fa=listed.require_totp,
                usuarios=sorted(listed.users.values(), key=lambda u: u.name),
                canais=web.channel_statuses(fresh=fresh), modelos=web.renderer.check(), **shown)


async def add_user(request: Request, login: auth.Login = Depends(auth.require("users.manage"))):
    form = await request.form()
    return await run_in_threadpool(_add_user, request, login, form)


def _add_user(request: Request, login: auth.Login, form):
    """In the threadpool: the password's argon2id hash takes a good part of a second of CPU."""
    web = request.app.state.web
    name, role = str(form.get("nome", "")).strip(), str(form.get("papel", ""))
    try:
        user, codes = users.add_user(web.users, web.log, login.actor, name, role, str(form.get("senha", "")),
                                     totp=form.get("totp") == "sim")
    except UserError as exc:
        return _render(request, login, erro=str(exc), status=422)
    return _shown_secret(request, login, user, codes) if user.totp else _render(request, login, criado=user)


def disable_user(name: str, request: Request, login: auth.Login = Depends(auth.require("users.manage"))):
    web = request.app.state.web
    try:
        users.disable_user(web.users, web.log, login.actor, name)
    except UserError as exc:
        return _render(request, login, erro=str(exc), status=422)
    return RedirectResponse("/configuracao", status_code=303)


def reset_totp(name: str, request: Request, login: auth.Login = Depends(auth.require("users.manage"))):
    web = request.app.state.web
    try:
        user, codes = users.reset_totp(web.users, web.log, login.actor, name)
    except UserError as exc:
        return _render(request, login, erro=str(exc), status=422)
    return _shown_secret(request, login, user, codes)


def _shown_secret(request: Request, login: auth.Login, user, codes: list[str]):
    """The page with `user`'s new TOTP secret, its QR code and recovery codes: shown this once."""
    uri = users.totp_uri(user, request.app.state.web.config.company.name)
    return _render(request, login, criado=user, codigos=codes, uri=uri, qr=segno.make(uri).svg_data_uri(scale=3))


def create_token(name: str, request: Request, login: auth.Login = Depends(auth.require("users.manage"))):
    """A new API token for `name`, shown on this answer only (never in a redirect's URL, never again)."""
    web = request.app.state.web
    try:
        token, before = users.new_token(web.users, web.log, login.actor, name)
    except UserError as exc:
        return _render(request, login, erro=str(exc), status=422)
    return _render(request, login, token_novo={"nome": name, "token": token, "substitui": before.token_created})


def revoke_token(name: str, request: Request, login: auth.Login = Depends(auth.require("users.manage"))):
    web = request.app.state.web
    try:
        users.revoke_token(web.users, web.log, login.actor, name)
    except UserError as exc:
        return _render(request, login, erro=str(exc), status=422)
    return RedirectResponse("/configuracao", status_code=303)


async def require_totp(request: Request, login: auth.Login = Depends(auth.require("users.manage"))):
    web = request.app.state.web
    wanted = (await request.form()).get("exigir") == "sim"
    await run_in_threadpool(users.require_totp, web.users, web.log, login.actor, wanted)
    return RedirectResponse("/configuracao", status_code=303)
