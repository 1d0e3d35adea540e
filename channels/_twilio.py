"""What the WhatsApp and SMS channels share: Twilio settings, the client, and error mapping.

Each channel needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and its own sender (TWILIO_WHATSAPP_FROM
or TWILIO_SMS_FROM). With none of them set the channel writes to the outbox, so a newcomer sees
real output; with some set, a missing one is a configuration mistake and is named at build time.
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, ClassVar, Mapping

from . import FAILED, SENT, Channel, ChannelError, Result, outbox

PROVIDER = "twilio"
DEFAULT_API_BASE = "https://api.twilio.com"
DEFAULT_TIMEOUT = 30.0

# Twilio error codes the notifier treats by name (https://www.twilio.com/docs/api/errors).
AUTHENTICATION = "20003"
TOO_MANY_REQUESTS = "20429"
INVALID_NUMBER = "21211"
UNSUBSCRIBED = "21610"
NOT_ON_WHATSAPP = "63003"
OUTSIDE_WINDOW = "63016"


@lru_cache(maxsize=None)
def _sdk() -> SimpleNamespace:
    """The Twilio SDK and `requests`, imported when a message is first sent or looked up: they
    are a fifth of a second of a process's start, and most runs send nothing by Twilio."""
    import requests
    from twilio.base.exceptions import TwilioRestException, TwilioServiceException
    from twilio.base.version import Version
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    return SimpleNamespace(
        requests=requests, Client=Client, HttpClient=TwilioHttpClient,
        # The SDK's own reading of an error answer (RFC 9457 or Twilio's legacy JSON).
        exception=Version.exception,
        rest_errors=(TwilioRestException, TwilioServiceException),
        # What can go wrong talking to Twilio. Anything else is a bug of ours and keeps its traceback.
        errors=(TwilioRestException, TwilioServiceException, requests.RequestException, json.JSONDecodeError),
    )


_HINTS = {
    OUTSIDE_WINDOW: "outside the 24-hour customer-service window a WhatsApp message needs an "
                    "approved template: configure a content_sid for this stage",
    UNSUBSCRIBED: "the recipient replied STOP to this sender; Twilio delivers nothing to them "
                  "until they reply START",
}


class TwilioChannel(Channel):
    """Base of the Twilio channels: settings from `config.env`, one client reused for every send.

    Options (`[channels.NAME]`): `timeout`, seconds to wait for Twilio (default 30; the SDK's own
    default is to wait forever, which would stall a whole cycle on one dead connection);
    `status_callback`, the public URL of `notifier serve-webhooks` that Twilio posts statuses to.
    """
    from_var: ClassVar[str]
    from_prefix: ClassVar[str] = ""

    def __init__(self, config, options: Mapping[str, Any] | None = None):
        super().__init__(config, options)
        env = config.env
        wanted = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", self.from_var)
        self.outbox = not any(env.get(v) for v in wanted + ("TWILIO_API_BASE",))
        self._client = None
        timeout = self.options.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ChannelError(f"channels.{self.name}.timeout: must be a positive number of seconds, not {timeout!r}")
        self.timeout = float(timeout)
        callback = self.options.get("status_callback")
        if callback is not None and not (isinstance(callback, str) and callback.startswith(("http://", "https://"))):
            raise ChannelError(f"channels.{self.name}.status_callback: must be the http(s) URL where Twilio "
                               f"posts status changes (notifier serve-webhooks), not {callback!r}")
        self.status_callback = callback
        if self.outbox:
            return
        missing = [v for v in wanted if not env.get(v)]
        if missing:
            verb, them = ("is", "it") if len(missing) == 1 else ("are", "them")
            raise ChannelError(
                f"{self.name}: {', '.join(missing)} {verb} not set (set {them} in .env, or unset every "
                f"TWILIO_ variable to write {self.name} messages to the outbox)"
            )
        self.account_sid = env["TWILIO_ACCOUNT_SID"]
        self.auth_token = env["TWILIO_AUTH_TOKEN"]
        self.api_base = env.get("TWILIO_API_BASE", DEFAULT_API_BASE).rstrip("/")
        if not self.api_base.startswith(("http://", "https://")):
            raise ChannelError(f"{self.name}: TWILIO_API_BASE must be an http:// or https:// URL, not {self.api_base!r}")
        sender = env[self.from_var].strip()
        self.sender = sender if sender.startswith(self.from_prefix) else self.from_prefix + sender

    def callback_fields(self) -> dict:
        """`StatusCallback` for each request when configured: Twilio then posts every status change."""
        return {"StatusCallback": self.status_callback} if self.status_callback and not self.outbox else {}

    @property
    def live(self) -> bool:
        return not self.outbox

    @property
    def provider(self) -> str:
        return outbox.PROVIDER if self.outbox else PROVIDER

    @property
    def client(self):
        if self._client is None:
            self._client = build_client(self.account_sid, self.auth_token, self.timeout)
        return self._client

    def create(self, to: str, fields: dict) -> dict | Result:
        """Post one message to `to` (`fields` by Twilio's names: Body, ContentSid...); Twilio's
        answer as a dict of evidence, or the failed `Result`."""
        try:
            msg = self._call("POST", "/Messages.json", {"To": to, "From": self.sender, **fields})
        except _sdk().errors as exc:
            result = self.failure(exc)
            # The cycle's back-off waits at least this long before trying again (429, 503).
            wait = getattr(exc, "retry_after", None)
            return replace(result, evidence={**result.evidence, "retry_after": wait}) if wait else result
        return {"sid": msg["sid"], "status": msg["status"], "num_segments": _int(msg.get("num_segments"))}

    def _call(self, method: str, resource: str, fields: dict | None = None) -> dict:
        """One request to Twilio's 2010-04-01 REST API under this account; the answer's JSON.

        The SDK's client does the HTTP (auth, user agent, timeout) and its own reading of error
        answers raises; the generated resource classes (`client.api.v2010...`) are not used: they
        are a thousand modules, a fifth of a second of every process that sends a message.
        """
        uri = f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}{resource}"
        response = self.client.request(method, uri, data=fields, timeout=self.timeout)
        if not 200 <= response.status_code < 300:
            verb = "create" if method == "POST" else "fetch"
            error = _sdk().exception(method, uri, response, f"Unable to {verb} record")
            error.retry_after = (response.headers or {}).get("Retry-After")
            raise error
        return json.loads(response.text)

    def sent(self, to: str, answers: list[dict], **evidence) -> Result:
        """The `Result` of messages Twilio accepted, one answer per message, in order."""
        sids = [a["sid"] for a in answers]
        return Result(
            SENT, PROVIDER, provider_id=",".join(sids), detail=answers[-1]["status"],
            evidence={"to": to, "from": self.sender, "sids": sids, "status": [a["status"] for a in answers],
                      "num_segments": sum(a["num_segments"] or 0 for a in answers), **evidence},
        )

    def write_outbox(self, to: str, payload: dict, meta: Mapping[str, Any]) -> Result:
        # meta may hold dates or Decimals; the outbox file is for reading, so str() is enough.
        plain = json.loads(json.dumps(dict(meta), default=str))
        return outbox.write_json(self.config.outbox, self.name, to, {"channel": self.name, "to": to, **payload, "meta": plain})

    def failure(self, exc: Exception) -> Result:
        """The `Result` for one of `_sdk().errors`: permanent or worth retrying, in a sentence."""
        sdk = _sdk()
        if isinstance(exc, sdk.rest_errors):
            return _rest_failure(exc)
        if isinstance(exc, sdk.requests.ReadTimeout):
            # Twilio got the request and may have accepted it: a retry could send the notice twice.
            return Result(FAILED, PROVIDER, code="no_answer", detail=f"no answer from Twilio at {self.api_base} within "
                          f"{self.timeout:g} s: the message may have gone; not retried so that it cannot "
                          "go twice (look it up in Twilio's message log)", permanent=True)
        if isinstance(exc, sdk.requests.RequestException):
            # Connection refused, DNS, TLS: nothing was accepted, so trying again is safe.
            return Result(FAILED, PROVIDER, code="unreachable", detail=f"could not reach Twilio at {self.api_base}: "
                          f"{type(exc).__name__}: {_short(exc)}", permanent=False)
        return Result(FAILED, PROVIDER, code="not_twilio", detail=f"the answer from {self.api_base} is not Twilio's "
                      "JSON (is TWILIO_API_BASE right?)", permanent=False)

    def delivery_status(self, sid: str) -> Result:
        """What Twilio says now about a message it accepted earlier (queued, sent, delivered,
        undelivered, failed, read), for an audit or a later check of delivery."""
        msg = self._fetch(sid)
        if isinstance(msg, Result):
            return msg
        failed = msg["status"] in ("failed", "undelivered")
        return Result(
            FAILED if failed else SENT, PROVIDER, provider_id=msg["sid"],
            code=_code(msg), detail=msg.get("error_message") or msg["status"], permanent=failed,
            evidence={"sid": msg["sid"], "status": msg["status"], "num_segments": _int(msg.get("num_segments"))},
        )

    def message_status(self, sid: str) -> tuple[str, str | None, str | None] | None:
        """(status, error code, error text) of message `sid` for the status poll
        (notifier/log/statuses.py), or None when Twilio cannot be asked right now."""
        msg = self._fetch(sid)
        if isinstance(msg, Result):
            return None
        return msg["status"], _code(msg), msg.get("error_message")

    def _fetch(self, sid: str):
        if self.outbox:
            raise ChannelError(f"{self.name}: no Twilio account configured: nothing to look up")
        try:
            return self._call("GET", f"/Messages/{sid}.json")
        except _sdk().errors as exc:
            return self.failure(exc)

    def check(self, connect: bool = False) -> list[str]:
        if self.outbox or not connect:
            return []
        try:
            account = self._call("GET", ".json")
        except _sdk().errors as exc:
            return [f"{self.name}: cannot fetch Twilio account {self.account_sid}: {self.failure(exc).detail}"]
        if account.get("status") != "active":
            return [f"{self.name}: Twilio account {self.account_sid} is {account.get('status')}, not active"]
        return []

    def describe(self) -> str:
        if self.outbox:
            return f"{self.config.outbox / self.name} (no TWILIO_ variable set)"
        return (f"Twilio account {self.account_sid} (token ****) at {self.api_base}, "
                f"from {self.sender}")

    def close(self) -> None:
        if self._client is not None and getattr(self._client.http_client, "session", None):
            self._client.http_client.session.close()
        self._client = None


def request_fields(request: dict) -> dict:
    """The fields of a recorded request that a send posts, without To and From (the channel
    passes those)."""
    return {k: v for k, v in request.items() if k not in ("To", "From")}


# Twilio's field names (what a payload records and a send posts) -> the names of an outbox file.
_OUTBOX_NAMES = {"Body": "body", "ContentSid": "content_sid", "ContentVariables": "content_variables",
                 "StatusCallback": "status_callback"}


def outbox_fields(request: dict) -> dict:
    """A recorded request as an outbox file shows it, without To and From."""
    return {_OUTBOX_NAMES[k]: v for k, v in request_fields(request).items()}


def build_client(account_sid: str, auth_token: str, timeout: float = DEFAULT_TIMEOUT):
    """A twilio `Client` for `TwilioChannel._call`, which names the whole URL (TWILIO_API_BASE).

    It is given an environment of its own because, handed none, it reads TWILIO_EDGE/TWILIO_REGION
    from os.environ, and those would rewrite the host we chose.
    """
    sdk = _sdk()
    return sdk.Client(account_sid, auth_token, http_client=sdk.HttpClient(timeout=timeout),
                      environment={"TWILIO_ACCOUNT_SID": account_sid})


def _rest_failure(exc) -> Result:
    status = int(exc.status or 0)
    code = str(exc.code) if exc.code else None
    if isinstance(exc, _sdk().rest_errors[1]):  # TwilioServiceException
        message = exc.detail or exc.title
    else:
        message = str(exc.msg).removeprefix("Unable to create record: ").removeprefix("Unable to fetch record: ")
    if status == 401 or code == AUTHENTICATION:
        return Result(FAILED, PROVIDER, code=code, detail=f"authentication failed: Twilio rejected "
                      f"TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN ({message})", permanent=True,
                      evidence={"http_status": status})
    # Throttling and Twilio's own failures pass; any other refusal would be refused again.
    temporary = status in (408, 429) or status >= 500 or code == TOO_MANY_REQUESTS
    detail = f"{message} ({_HINTS[code]})" if code in _HINTS else message
    return Result(FAILED, PROVIDER, code=code, detail=detail, permanent=not temporary,
                  evidence={"http_status": status})


def _code(msg: dict) -> str | None:
    """A message's Twilio error code as text (Twilio answers it as a number), or None."""
    return str(msg["error_code"]) if msg.get("error_code") else None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."
