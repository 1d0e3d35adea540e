"""A small real HTTP server on 127.0.0.1 that speaks the part of Twilio's REST API we use.

The twilio SDK talks to it over real HTTP when `TWILIO_API_BASE` is its `url`: message create and
fetch, account fetch, HTTP basic auth checked. Every posted form is recorded, and `fail()` makes a
`To` address answer with an error, as Twilio would, so tests can walk every error code.
`set_status()` moves a message on (delivered, read, failed...) for later fetches and posts its
signed status callback, as Twilio does.

Use the `fake_twilio` fixture: `from tests.fake_twilio import fake_twilio` in a test module.
"""
from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import urllib.error
import urllib.request
from urllib.parse import parse_qsl, urlencode

import pytest
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "fake-auth-token-0123456789abcdef"

# GSM 03.38: a body of only these characters is GSM-7 (160 a segment alone, 153 when joined);
# anything else makes the whole SMS UCS-2 (70, or 67 joined). The extension set costs two.
_GSM = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
           "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = set("^{}\\[~]|€\f")


def sms_segments(body: str) -> int:
    if all(c in _GSM or c in _GSM_EXT for c in body):
        units, single, joined = sum(2 if c in _GSM_EXT else 1 for c in body), 160, 153
    else:
        units, single, joined = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // joined)


@dataclass
class Failure:
    status: int
    code: int | None
    message: str
    after: int = 0  # messages to this address that succeed before it starts failing
    times: int | None = None  # fail this many times, then accept (None: always)
    retry_after: str | None = None  # a Retry-After header to send with the error


class FakeTwilio:
    """The server; `start()` binds a free port on 127.0.0.1, `stop()` shuts it down."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.posts: list[dict] = []  # every POST to Messages.json: {"form", "authorized"}
        self.messages: dict[str, dict] = {}  # sid -> the JSON Twilio answered
        self.failures: dict[str, Failure] = {}
        self.refusals: list[tuple[str, float]] = []  # (To, monotonic time) of each error answered
        # True: every request gets an HTML page with 200, as from a wrong TWILIO_API_BASE.
        self.html_only = False
        self.delay = 0.0  # seconds to wait before answering, to make a client time out
        # To -> seconds to wait before answering a message to that address (which is then accepted:
        # a client that timed out cannot know that it went).
        self.slow: dict[str, float] = {}
        self._sent_to: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def forms(self) -> list[dict]:
        """The forms of the messages Twilio accepted (authorized and not failed), in order."""
        return [m["_form"] for m in self.messages.values()]

    def env(self, **overrides) -> dict:
        """The TWILIO_ variables of a config pointing at this server; an override of None unsets."""
        env = {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
            "TWILIO_SMS_FROM": "+15005550006",
            "TWILIO_API_BASE": self.url,
        }
        env.update(overrides)
        return {k: v for k, v in env.items() if v is not None}

    def set_status(self, sid: str, status: str, error_code: int | None = None, error_message: str | None = None) -> int | None:
        """Move message `sid` to `status`, as Twilio does when WhatsApp or the carrier reports;
        its next fetch says so. When it was sent with a StatusCallback, post the callback, signed
        as Twilio signs (X-Twilio-Signature), and return our endpoint's HTTP status."""
        with self._lock:
            message = self.messages[sid]
            message.update(status=status, error_code=error_code, error_message=error_message)
            callback = message["_form"].get("StatusCallback")
        if not callback:
            return None
        form = {"AccountSid": self.account_sid, "MessageSid": sid, "SmsSid": sid, "MessageStatus": status,
                "SmsStatus": status, "To": message["to"], "From": message["from"], "ApiVersion": "2010-04-01"}
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
        return post_callback(callback, form, RequestValidator(self.auth_token).compute_signature(callback, form))

    def fail(self, to: str, status: int, code: int | None, message: str, after: int = 0,
             times: int | None = None, retry_after: str | None = None) -> None:
        """Make messages to exactly `to` (e.g. "whatsapp:+5511900000001") fail like Twilio."""
        self.failures[to] = Failure(status, code, message, after, times, retry_after)

    def start(self) -> "FakeTwilio":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        # A short poll keeps stop() quick: shutdown() waits for the loop's next poll.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeTwilio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # What Twilio answers, as (HTTP status, JSON body).

    def create(self, form: dict) -> tuple[int, dict]:
        to = form.get("To", "")
        if not to or not (form.get("Body") or form.get("ContentSid")):
            return _error(400, 21602 if to else 21604, "Message body is required." if to else "A 'To' phone number is required.")
        with self._lock:
            failure = self.failures.get(to)
            count = self._sent_to.get(to, 0)
            if failure and count >= failure.after and failure.times != 0:
                if failure.times is not None:
                    failure.times -= 1
                self.refusals.append((to, time.monotonic()))
                return _error(failure.status, failure.code, failure.message) + (
                    {"Retry-After": failure.retry_after} if failure.retry_after else {},)
            self._sent_to[to] = count + 1
            sid = "SM" + uuid.uuid4().hex
            now = format_datetime(datetime.now(timezone.utc), usegmt=True).replace("GMT", "+0000")
            body = form.get("Body", "")
            whatsapp = to.startswith("whatsapp:")
            message = {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": None,
                "num_media": "0",
                "num_segments": "1" if whatsapp else str(sms_segments(body)),
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued",
                "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
                "to": to,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            }
            self.messages[sid] = {**message, "_form": form}
        return 201, message

    def fetch_message(self, sid: str) -> tuple[int, dict]:
        message = self.messages.get(sid)
        if message is None:
            return _error(404, 20404, f"The requested resource /2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json was not found")
        return 200, {k: v for k, v in message.items() if k != "_form"}

    def fetch_account(self) -> tuple[int, dict]:
        return 200, {
            "date_created": "Mon, 05 Jan 2026 12:00:00 +0000",
            "date_updated": "Mon, 05 Jan 2026 12:00:00 +0000",
            "friendly_name": "Lucanet cobrança",
            "owner_account_sid": self.account_sid,
            "sid": self.account_sid,
            "status": "active",
            "subresource_uris": {"messages": f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"},
            "type": "Full",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}.json",
        }


def post_callback(url: str, form: dict, signature: str | None) -> int | None:
    """POST a status callback form to `url` as Twilio would; the HTTP status of the answer, or
    None when nothing listens there (Twilio would retry later; the poll still finds the status)."""
    request = urllib.request.Request(url, data=urlencode(form).encode(), method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    if signature is not None:
        request.add_header("X-Twilio-Signature", signature)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError:
        return None


def _error(status: int, code: int | None, message: str) -> tuple[int, dict]:
    body = {"message": message, "status": status}
    if code is not None:
        body.update(code=code, more_info=f"https://www.twilio.com/docs/errors/{code}")
    return status, body


_ROUTES = (
    ("POST", re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Messages\.json$"), "create"),
    ("GET", re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Messages/(?P<sid>SM\w+)\.json$"), "fetch_message"),
    ("GET", re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)\.json$"), "fetch_account"),
)


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8") if length else ""
            path = self.path.split("?", 1)[0]
            route = next(((name, m) for verb, rx, name in _ROUTES if verb == method and (m := rx.match(path))), None)
            if fake.delay:
                time.sleep(fake.delay)
            if fake.html_only:
                self._answer(200, "<html><body>Welcome</body></html>", content_type="text/html")
                return
            authorized = self._authorized()
            form = dict(parse_qsl(raw, keep_blank_values=True))
            if route and route[0] == "create":
                fake.posts.append({"form": form, "authorized": authorized, "time": time.monotonic()})
                if fake.slow.get(form.get("To")):
                    time.sleep(fake.slow[form["To"]])
            if not authorized:
                self._answer(*_error(401, 20003, "Authenticate"), extra={"WWW-Authenticate": 'Basic realm="Twilio API"'})
            elif route is None:
                self._answer(*_error(404, 20404, f"The requested resource {path} was not found"))
            elif route[1]["account"] != fake.account_sid:
                self._answer(*_error(404, 20404, f"The requested resource {path} was not found"))
            elif route[0] == "create":
                status, body, *headers = fake.create(form)
                self._answer(status, body, extra=headers[0] if headers else None)
            elif route[0] == "fetch_message":
                self._answer(*fake.fetch_message(route[1]["sid"]))
            else:
                self._answer(*fake.fetch_account())

        def _authorized(self) -> bool:
            expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
            return self.headers.get("Authorization", "") == f"Basic {expected}"

        def _answer(self, status: int, body: dict | str, extra: dict | None = None,
                    content_type: str = "application/json") -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test): nobody to answer

        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            pass  # keep test output clean

    return Handler


@pytest.fixture
def fake_twilio():
    """A running `FakeTwilio`; stopped when the test ends."""
    with FakeTwilio() as server:
        yield server
