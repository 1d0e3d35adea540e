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


PER_PAGE = 50  # tasks a page shows: a queue of thousands is paged, newest first


def show(request: Request, tipo: str = "", abertas: str = "sim", minhas: str = "", pagina: int = 1,
         login: auth.Login = Depends(auth.require("tasks.view"))):
    return _render(request, login, tipo, abertas != "nao", minhas == "sim", pagina)


def _render(request: Request, login: auth.Login, kind: str = "", only_open: bool = True, mine: bool = False,
            number: int = 1, status: int = 200, **shown):
    web = request.app.state.web
    found = [t for t in task_list(web.log, web.store.snapshot())
             if (not only_open or t.done is None) and (not kind or t.kind == kind)
             and (not mine or t.assigned == login.user.name)]
    pages = max(1, -(-len(found) // PER_PAGE))
    number = min(max(1, number), pages)
    newest_first = found[::-1][(number - 1) * PER_PAGE:number * PER_PAGE]
    index = index_for(web.config.attempt_log, web.config.tz)
    items = []
    for t in newest_first:
        # The message's text (a DM to send by hand), read for the tasks shown only.
        sending = (index.sending(t.ref) or {}) if t.ref else {}
        items.append({"tarefa": t, "texto": (sending.get("content") or {}).get("text"),
                      "perfil": _profile(t.recipient) if t.channel == "social" else None})
    return page(request, login, "tasks.html", status=status, tarefas=items, tipos=TASK_KINDS, tipo=kind,
                abertas=only_open, minhas=mine, pagina=number, paginas=pages, total=len(found),
                primeira=(number - 1) * PER_PAGE + 1, **shown)


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
            task = close_task(web.log, web.now(), task_id, login.actor, outcome)
    except (DeliveryError, InvalidText) as exc:
        return _render(request, login, status=422, erro=str(exc))
    return _render(request, login, feito=f"Tarefa de {task.account} concluída.")


def assign(task_id: str, request: Request, login: auth.Login = Depends(auth.require("tasks.work"))):
    web = request.app.state.web
    try:
        with _working:
            task = assign_task(web.log, web.now(), task_id, login.actor)
    except DeliveryError as exc:
        return _render(request, login, status=422, erro=str(exc))
    return _render(request, login, feito=f"A tarefa de {task.account} agora é sua.")
