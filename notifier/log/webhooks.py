"""Twilio's status callbacks: a small HTTP endpoint that appends delivery statuses to the log.

Twilio posts `MessageSid`, `MessageStatus`, `ErrorCode`... to the `status_callback` URL a message
was sent with. Anyone on the network could post the same form, so each request must carry a
valid `X-Twilio-Signature` (HMAC-SHA1 of the URL and the form with our auth token, checked with
the twilio library's `RequestValidator`); anything unsigned or mis-signed gets 401 and nothing is
recorded. The URL signed is the public one Twilio used (`[channels.whatsapp|sms]
status_callback`), not the address we listen on: behind a reverse proxy the two differ.

A valid callback for a message we do not know (older than three days, or another system's on the
same Twilio account) is answered 204 and not recorded. The server is single-threaded on purpose:
callbacks are small, and one writer at a time keeps the tracker simple.

The same URL takes the customers' replies (set it as the sender's "a message comes in" webhook):
a signed form with a `Body` is an inbound message, handed to `on_message(sender, body)`, which
opts out whoever replied "SAIR" (notifier/staff/optout.py).
"""
from __future__ import annotations

from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

from twilio.request_validator import RequestValidator

from notifier.log.statuses import Tracker

MAX_BODY = 64 * 1024  # a status callback is well under 2 KB


def parse_listen(text: str) -> tuple[str, int]:
    """"127.0.0.1:8080" -> ("127.0.0.1", 8080); ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {text!r}: write HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


class CallbackHandler:
    """What to do with one request, apart from HTTP: check it, record it, answer a status code."""

    def __init__(self, tracker: Tracker, auth_token: str, public_urls: list[str], now: Callable[[], datetime],
                 on_message: Callable[[str, str], object] | None = None):
        self.tracker = tracker
        self.on_message = on_message
        self.validator = RequestValidator(auth_token)
        # Twilio signs the URL it was given; a request comes to its path on our side.
        self.urls = {urlsplit(u).path or "/": u for u in public_urls}
        self.now = now

    def handle(self, path: str, form: dict[str, str], signature: str | None) -> int:
        url = self.urls.get(urlsplit(path).path)
        if url is None:
            return 404
        if not signature or not self.validator.validate(url, form, signature):
            return 401
        if "Body" in form:  # a customer's reply, not a status
            if not form.get("From"):
                return 400
            if self.on_message is not None:
                self.on_message(form["From"], form["Body"])
            return 204
        sid, status = form.get("MessageSid") or form.get("SmsSid"), form.get("MessageStatus") or form.get("SmsStatus")
        if not sid or not status:
            return 400
        self.tracker.record(sid, (status, form.get("ErrorCode") or None, form.get("ErrorMessage")), "callback",
                            self.now())
        return 204


def make_server(host: str, port: int, handler: CallbackHandler) -> HTTPServer:
    class Http(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413)
                return
            body = self.rfile.read(length).decode("utf-8", "replace")
            form = dict(parse_qsl(body, keep_blank_values=True))
            self._answer(handler.handle(self.path, form, self.headers.get("X-Twilio-Signature")))

        def do_GET(self):
            self._answer(405)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            pass  # requests are in the attempt log when they matter; forms hold phone numbers

    return HTTPServer((host, port), Http)
