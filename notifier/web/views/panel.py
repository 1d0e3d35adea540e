"""Painel: how the notifier is doing, from the same library call as `notifier status`."""
from __future__ import annotations

from datetime import datetime

from fastapi import Depends, Request

from notifier.staff.actions import health

from .. import auth
from . import page


async def show(request: Request, login: auth.Login = Depends(auth.require("panel.view"))):
    web = request.app.state.web
    report = health(web.store, web.config, web.log, datetime.now(web.config.tz))
    return page(request, login, "panel.html", saude=report)
