"""Tarefas: what the notifier left for a person (a DM to send by hand, a deletion or protest to
do, a send interrupted by a crash, a bounce or an invalid number to fix), from the same library
call as `notifier tasks` (`staff.actions.tasks`), over the log index's task records."""
from __future__ import annotations

import threading

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from notifier.log.index import index_for
from notifier.reports.exports import TASK_KINDS
from notifier.run.delivery import DeliveryError
from notifier.staff.actions import assign_task, close_task, task_list
from notifier.staff.actor import InvalidText

from .. import auth
from . import page

PROFILE = {"instagram": "https://www.instagram.com/{}/", "facebook": "https://www.facebook.com/{}",
           "x": "https://x.com/{}", "twitter": "https://x.com/{}", "linkedin": "https://www.linkedin.com/in/{}/"}


def _profile(recipient: str) -> str | None:
    """The profile link of a social recipient (`instagram:@handle`), for the person sending by hand."""
    network, _, handle = recipient.partition(":")
    pattern = PROFILE.get(network)
    return pattern.format(handle.lstrip("@")) if pattern and handle else None


def show(request: Request, tipo: str = "", abertas: str = "sim", minhas: str = "",
               login: auth.Login = Depends(auth.require("tasks.view"))):
    return _render(request, login, tipo, abertas != "nao", minhas == "sim")


def _render(request: Request, login: auth.Login, kind: str = "", only_open: bool = True, mine: bool = False,
            status: int = 200, **shown):
    web = request.app.state.web
    records = index_for(web.config.attempt_log).task_records()
    by_id = {r["id"]: r for r in records if "id" in r}
    found = [t for t in task_list(records, web.store.snapshot())
             if (not only_open or t.done is None) and (not kind or t.kind == kind)
             and (not mine or t.assigned == login.user.name)]
    items = []
    for t in reversed(found):  # newest first
        sending = by_id.get(by_id.get(t.id, {}).get("ref"), {})
        items.append({"tarefa": t, "texto": (sending.get("content") or {}).get("text"),
                      "perfil": _profile(t.recipient) if t.channel == "social" else None})
    return page(request, login, "tasks.html", status=status, tarefas=items, tipos=TASK_KINDS, tipo=kind,
                abertas=only_open, minhas=mine, **shown)


async def close(task_id: str, request: Request, login: auth.Login = Depends(auth.require("tasks.work"))):
    form = await request.form()
    return await run_in_threadpool(_close, task_id, request, login, str(form.get("resultado", "")))


# A task is read (open? whose?) and then closed or taken by a record: one at a time, or two people
# clicking "Enviei" together would both close it (the views run in the threadpool).
_working = threading.Lock()


def _close(task_id: str, request: Request, login: auth.Login, outcome: str):
    web = request.app.state.web
    try:
        with _working:
            task = close_task(web.log, web.now(), task_id, login.actor, outcome,
                              index_for(web.config.attempt_log).task_records())
    except (DeliveryError, InvalidText) as exc:
        return _render(request, login, status=422, erro=str(exc))
    return _render(request, login, feito=f"Tarefa de {task.account} concluída.")


def assign(task_id: str, request: Request, login: auth.Login = Depends(auth.require("tasks.work"))):
    web = request.app.state.web
    try:
        with _working:
            task = assign_task(web.log, web.now(), task_id, login.actor, index_for(web.config.attempt_log).task_records())
    except DeliveryError as exc:
        return _render(request, login, status=422, erro=str(exc))
    return _render(request, login, feito=f"A tarefa de {task.account} agora é sua.")
