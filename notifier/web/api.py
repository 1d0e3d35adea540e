"""The JSON API under /api: for the billing system, a bank webhook relay, or a script (issue 21).

Who calls: a bearer token (`Authorization: Bearer TOKEN`, from `notifier users token NAME` or the
Configuração page), which carries its user's role; `permissions.py` says what the role may do, as
for the pages. The users file is re-read when it changes (as for sessions): a revoked token or a
disabled user is refused at the next request. Session cookies are not accepted here, so a page of
another site cannot make a logged-in browser call the API (no CSRF to guard against).

What it does: each endpoint calls the library function the CLI command and the console page call
(search `find`, `customer_view`, `record_payment`, `place_hold`/`release_hold`, `task_list`), and
a change is signed by the token's user, with `client` saying it came through the API, in the
attempt log as the pages' actions are. Reads are not recorded (as page views are not: the log is
the record of what was done to and for customers, and an account's reads would be lines of its
audit).

Errors are JSON `{"error": "..."}` in English (the API's users are programmers), with 400 (a body
that is not JSON), 401 (no token, a bad one: with `WWW-Authenticate: Bearer`), 403 (the role may
not), 404, 409 (a conflict with what is recorded) and 422 (a field that cannot be: it is named).
Never the token in one of them.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.routing import APIRoute
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict

from notifier.log.index import index_for
from notifier.run.delivery import DeliveryError
from notifier.staff import actions
from notifier.staff.actor import Actor, InvalidText
from notifier.staff.customer import customer_view, view_json
from notifier.staff.payments import record_payment
from notifier.staff.search import LIMIT, find
from notifier.state.store import AlreadyPaid, StoreError

from . import permissions
from .auth import client_address
from .users import User

PREFIX = "/api"


def is_api(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


# --- errors -----------------------------------------------------------------------------------------

class ApiError(Exception):
    """An answer other than success: its status and the sentence of `{"error": ...}`."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors as one sentence naming each field; a body that is not JSON is a 400."""
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return error(400, "the request body is not valid JSON")
    if any(p.get("loc") == ("body",) for p in problems):
        return error(422, "the body must be a JSON object (Content-Type: application/json)")
    said = []
    for p in problems:
        where = [str(part) for part in p.get("loc", ()) if part not in ("body", "query", "path", "header")]
        said.append(f"{'.'.join(where) or 'body'}: {p.get('msg', 'invalid').removeprefix('Value error, ')}")
    return error(422, "; ".join(said))


class Error(BaseModel):
    error: str = Field(description="What went wrong, in English; names the field when a field is wrong.")


def _answers(*statuses: int) -> dict:
    texts = {400: "The body is not JSON.", 401: "No token, or not a valid one.", 403: "The token's role may not do this.",
             404: "No such account or invoice.", 409: "Conflicts with what is recorded.",
             422: "A field that cannot be (named in the error)."}
    return {s: {"model": Error, "description": texts[s]} for s in (401, 403, 422, *statuses)}


# --- who calls --------------------------------------------------------------------------------------

bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="A token from `notifier users token NAME` or the Configuração page; "
                                "it carries its user's role.")


class Caller:
    """The token's user, as the endpoints see them."""

    def __init__(self, user: User, client: str):
        self.user = user
        self.actor = Actor(user.name, user.role, client)


def authorize(request: Request, action: str) -> Caller:
    """The user of the request's bearer token, allowed to do `action`; else ApiError 401 or 403.
    Only the Authorization header counts: a session cookie is never looked at here."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "send a token: Authorization: Bearer TOKEN (see `notifier users token`)")
    user = request.app.state.web.users.by_token(token.strip())
    if user is None or user.disabled:
        raise ApiError(401, "the token is not valid (unknown, revoked, or its user disabled)")
    if not permissions.may(user.role, action):
        raise ApiError(403, f"the role {user.role} may not do this")
    return Caller(user, f"api {client_address(request)}")


def caller(action: str):
    """The endpoint's dependency: who calls, allowed to do `action`. `bearer` puts the scheme in
    the schema; `Checked` has already refused a caller who may not, before the body was read."""
    permissions.may("support", action)  # an unknown action is a bug in this module, at import time

    def dependency(request: Request, _: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
        return authorize(request, action)
    dependency.action = action
    return dependency


class Checked(APIRoute):
    """A route that checks the token and the role before FastAPI reads the body: a caller who may
    not call the endpoint gets a 401/403 whatever they sent (never a 400/422 that would tell them
    about the endpoint), and nothing of theirs is parsed."""

    def get_route_handler(self):
        handler = super().get_route_handler()
        action = next(d.call.action for d in self.dependant.dependencies if hasattr(d.call, "action"))

        async def checked(request: Request):
            await run_in_threadpool(authorize, request, action)  # a stat of the users file: off the loop
            return await handler(request)
        return checked


# --- what goes in and out ---------------------------------------------------------------------------

class HoldReason(str, Enum):
    promised_payment = "promised_payment"
    disputed = "disputed"
    negotiating = "negotiating"
    other = "other"


class TaskKind(str, Enum):
    social_manual = "social_manual"
    deletion_due = "deletion_due"
    unknown = "unknown"
    bounced = "bounced"
    escalation_waiting = "escalation_waiting"


def _iso_day(value):
    """Only a text YYYY-MM-DD is a date here: not a number (a timestamp?), not a date and time."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("write the date as YYYY-MM-DD")
    return value


def _likely_day(day: date) -> date:
    """As the CLI's `Day`: 0001-01-01 or 9999-12-31 are typos, and date arithmetic on them overflows."""
    if not date(2000, 1, 1) <= day <= date(2099, 12, 31):
        raise ValueError(f"{day.isoformat()} is outside 2000-2099: a typo?")
    return day


Day = Annotated[date, BeforeValidator(_iso_day), AfterValidator(_likely_day)]
Amount = Field(pattern=r"^-?\d+\.\d{2}$", description='Reais with two decimals, e.g. "1234.56".')


class Body(BaseModel):
    """A request body: no field it does not know (a typo is said, not ignored)."""
    model_config = ConfigDict(extra="forbid")


class Found(BaseModel):
    id: str
    company: str
    document: str = Field(description="CNPJ or CPF as billing gave it.")
    matched: str = Field(description="The field the text was found in (Portuguese label: empresa, e-mail, CNPJ/CPF...).")
    emails: list[str]


class InvoiceOut(BaseModel):
    id: str
    amount: str = Amount
    issued: date
    due: date
    paid: date | None
    effective_due: date | None = Field(None, description="Open invoices: the due date moved to a business day.")
    overdue: date | None = None
    suspension: date | None = None
    deletion: date | None = None
    pix_code: str | None = None


class HoldOut(BaseModel):
    reason: str
    since: date
    until: date = Field(description="The hold ends by itself on this day.")
    by: str
    note: str


class NextOut(BaseModel):
    date: date
    stage: str
    channels: list[str]
    invoices: list[str]
    first_time: bool


class AccountOut(BaseModel):
    id: str
    company: str
    contact_name: str
    document: str
    domain: str
    emails: list[str]
    portal_email: str | None
    whatsapp: str | None
    social: dict[str, str]
    due_day: int
    past_delinquencies: int
    opt_out: list[str]
    archived_late_invoices: int
    hold: HoldOut | None
    invoices: list[InvoiceOut]
    next: list[NextOut] = Field(description="The notices ahead, from today on (what `notifier timeline` plans).")


class EventOut(BaseModel):
    kind: str = Field(description="`sending` (an attempt), `payment`, or the log's event: contact, hold, release, "
                                  "escalation, opt_out, skipped, task_done, payment_corrected...")
    time: datetime
    actor: str
    status: str = Field(description="An attempt's latest status (`outbox`: written to the local outbox, never sent); "
                                    "else the kind.")
    record: dict[str, Any] = Field(description="The log record as written.")
    updates: list[dict[str, Any]] = Field(description="An attempt's outcome and later statuses, in order.")


class HistoryOut(BaseModel):
    account: str
    history: list[EventOut] = Field(description="Newest first: attempts, contacts, holds, payments (the customer page).")


class PaymentIn(Body):
    paid: Day = Field(description="The day the bank says it was paid: not in the future, not before the invoice's issue.")


class PaymentOut(BaseModel):
    invoice: str
    account: str
    paid: date
    recorded: bool = Field(description="False when the invoice already had this very date (nothing changed).")


class HoldIn(Body):
    reason: HoldReason
    until: Day = Field(description="The hold ends by itself on this day; after today.")
    note: str = Field("", max_length=2000)
    replace: Annotated[bool, Strict()] = Field(False, description="Replace another person's active hold (as `notifier hold --replace`).")


class HoldPlaced(BaseModel):
    account: str
    hold: HoldOut
    replaced: HoldOut | None
    unwarned_suspensions: dict[str, date] = Field(description="Invoice -> suspension date the customer will not be "
                                                              "warned of because of the hold.")
    deletions: dict[str, date] = Field(description="Invoice -> deletion date within the hold.")


class Released(BaseModel):
    account: str
    released: HoldOut


class TaskOut(BaseModel):
    id: str
    kind: TaskKind
    time: str
    account: str
    channel: str
    recipient: str
    detail: str
    open: bool
    done_by: str | None
    outcome: str | None
    until: str | None = Field(None, description="An escalation waiting for contact hours: when it goes out.")


# --- the endpoints ----------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX, tags=["api"], route_class=Checked,
                   generate_unique_id_function=lambda route: route.name)  # operationId: the function's name


def _web(request: Request):
    return request.app.state.web


def _hold_json(hold) -> dict:
    return {"reason": hold.reason, "since": hold.since, "until": hold.until, "by": hold.by, "note": hold.note}


def _view(request: Request, account_id: str):
    web = _web(request)
    view = customer_view(web.store.snapshot(), web.config, index_for(web.config.attempt_log), account_id,
                         web.now().date())
    if view is None:
        raise ApiError(404, f"no account {account_id!r}")
    return view


@router.get("/accounts", response_model=list[Found], responses=_answers(),
            summary="Find accounts (the console's search, `notifier find`)")
def accounts(request: Request, q: str = Query(min_length=1, max_length=200, description=(
                 "Id, part of the company name (accents and case ignored), domain, CNPJ/CPF in any format, "
                 "e-mail or phone.")),
             limit: int = Query(LIMIT, ge=1, le=500), _: Caller = Depends(caller("customers.view"))):
    return [f.to_json() for f in find(_web(request).store.snapshot(), q, limit)]


@router.get("/accounts/{account_id}", response_model=AccountOut, responses=_answers(404),
            summary="One account: identity, invoices with their dates, hold, notices ahead (`notifier show`)")
def account(account_id: str, request: Request, _: Caller = Depends(caller("customers.view"))):
    data = view_json(_view(request, account_id))
    data.pop("history")
    return data


@router.get("/accounts/{account_id}/history", response_model=HistoryOut, responses=_answers(404),
            summary="The contact history, newest first: attempts, contacts, holds, payments (the customer page)")
def history(account_id: str, request: Request, _: Caller = Depends(caller("customers.view"))):
    return {"account": account_id, "history": [e.to_json() for e in _view(request, account_id).history]}


@router.post("/invoices/{invoice_id}/payment", response_model=PaymentOut, responses=_answers(400, 404, 409),
             summary="Record a payment (`notifier pay`): the next cycle sends this invoice nothing")
def payment(invoice_id: str, body: PaymentIn, request: Request, who: Caller = Depends(caller("payments.record"))):
    """Payments only move forward: the same date again is a 200 that changes nothing; another date
    for a paid invoice is a 409 naming both (a correction is finance's, in the console or `pay --correct`)."""
    web = _web(request)
    if web.store.snapshot().invoice(invoice_id) is None:
        raise ApiError(404, f"no invoice {invoice_id!r}")
    try:
        invoice, _ = record_payment(web.store, web.log, web.now(), invoice_id, body.paid, who.actor)
    except AlreadyPaid as exc:
        if exc.paid != body.paid:
            raise ApiError(409, f"invoice {invoice_id!r} is already paid on {exc.paid.isoformat()}, not "
                                f"{body.paid.isoformat()}: nothing changed (a correction is made in the console's "
                                "Pagamentos page or with `notifier pay --correct`)") from None
        invoice = web.store.snapshot().invoice(invoice_id)
        return {"invoice": invoice_id, "account": invoice.account, "paid": exc.paid, "recorded": False}
    except StoreError as exc:  # the date: in the future, before the issue
        raise ApiError(422, str(exc)) from None
    return {"invoice": invoice_id, "account": invoice.account, "paid": invoice.paid, "recorded": True}


@router.post("/accounts/{account_id}/hold", response_model=HoldPlaced, responses=_answers(400, 404, 409),
             summary="Pause the account's notices until a day (`notifier hold`)")
def hold(account_id: str, body: HoldIn, request: Request, who: Caller = Depends(caller("customers.hold"))):
    web = _web(request)
    now = web.now()
    if web.store.snapshot().account(account_id) is None:
        raise ApiError(404, f"no account {account_id!r}")
    if body.until <= now.date():
        raise ApiError(422, f"until: {body.until.isoformat()} is not after today ({now.date().isoformat()})")
    try:
        placed = actions.place_hold(web.store, web.log, web.config, now, account_id, who.actor, body.reason.value,
                                    body.until, body.note, body.replace)
    except actions.HoldExists as exc:
        old = exc.hold
        raise ApiError(409, f"account {account_id!r} is already on hold ({old.reason}, until {old.until.isoformat()}) "
                            f"placed by {old.by} on {old.since.isoformat()}: send \"replace\": true to replace it") from None
    except InvalidText as exc:
        raise ApiError(422, str(exc)) from None
    except DeliveryError as exc:  # the account went meanwhile
        raise ApiError(404, str(exc)) from None
    return {"account": account_id, "hold": _hold_json(placed.hold),
            "replaced": placed.replaced and _hold_json(placed.replaced),
            "unwarned_suspensions": {i.id: d for i, d in placed.unwarned},
            "deletions": {i.id: d for i, d in placed.deletions}}


@router.delete("/accounts/{account_id}/hold", response_model=Released, responses=_answers(404),
               summary="End the account's hold now (`notifier release`)")
def release(account_id: str, request: Request, who: Caller = Depends(caller("customers.hold"))):
    web = _web(request)
    if web.store.snapshot().account(account_id) is None:
        raise ApiError(404, f"no account {account_id!r}")
    try:
        released = actions.release_hold(web.store, web.log, web.now(), account_id, who.actor)
    except DeliveryError as exc:  # not on hold
        raise ApiError(404, str(exc)) from None
    return {"account": account_id, "released": _hold_json(released)}


@router.get("/tasks", response_model=list[TaskOut], responses=_answers(),
            summary="Staff tasks (the Tarefas page, `notifier tasks`)")
def task_list(request: Request, kind: TaskKind | None = None,
              open: bool | None = Query(None, description="true: only open tasks; false: only closed ones."),
              _: Caller = Depends(caller("tasks.view"))):
    web = _web(request)
    found = actions.task_list(web.log, web.store.snapshot())
    return [t.to_json() for t in found
            if (kind is None or t.kind == kind.value) and (open is None or (t.done is None) == open)]


# --- the schema -------------------------------------------------------------------------------------

def schema(app) -> dict:
    """/openapi.json: the API's routes only (the HTML pages are not an API), with the bearer scheme."""
    if app.openapi_schema is None:
        app.openapi_schema = get_openapi(
            title="Dunning notifier API", version="1",
            description=__doc__.split("\n\n", 1)[1], routes=router.routes)
    return app.openapi_schema
