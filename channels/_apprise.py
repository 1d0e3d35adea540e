"""One message to one apprise URL, as a `Result` an audit can read (social, staff, e-mail APIs).

Why the code is shaped this way (apprise 2.x, read in its source):
- A fresh `Apprise` object and plugin per send. apprise paces each plugin *instance*
  (`URLBase.throttle()`: a base plugin waits `request_rate_per_sec`, 5.5 s, after its previous
  request), and a new instance has no previous request, so a send never waits for an earlier
  one. The per-service rate is kept rather than lowered: inside one send it still spaces the
  several requests some plugins make (a long Telegram message goes in parts). Fresh objects
  also avoid sharing apprise state between worker threads: none of it is documented as
  thread-safe.
- The log lines of a send come from the `AppriseResult` that `notify()` returns (captured per
  call at INFO and above), not from `apprise.LogCapture`, which raises the level of the global
  `apprise` logger for a while and so mixes up threads. INFO lines ("Sent ... notification.")
  appear only when the process's logging lets the `apprise` logger emit INFO; warnings always do.
- apprise returns success or failure, never the provider's message id or HTTP status: the
  evidence says so, and every failure of a valid URL counts as temporary.
- apprise itself logs an unparseable URL whole ("Unparseable Telegram URL tgram://TOKEN/..."),
  secrets included. While we call it, a filter on its logger replaces the URL and the plugin's
  private values with masks, so neither the process log nor our evidence ever holds them.
"""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from contextvars import ContextVar

from . import FAILED, SENT, Result

PROVIDER = "apprise"
NO_PROVIDER_ID = "apprise: no provider message id"
INVALID_URL = "invalid_url"

# (secret, mask) pairs to hide in apprise's log records made by the current send.
_hidden: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("apprise_hidden", default=())


class _HideSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        pairs = _hidden.get()
        if pairs:
            text = record.getMessage()
            for secret, mask in pairs:
                text = text.replace(secret, mask)
            record.msg, record.args = text, ()
        return True


logging.getLogger("apprise").addFilter(_HideSecrets())


@contextmanager
def _hiding(pairs: list[tuple[str, str]]):
    token = _hidden.set(tuple(pairs))
    try:
        yield
    finally:
        _hidden.reset(token)


def masked_invalid(url: str) -> str:
    """How to name a URL apprise cannot parse: its scheme only, since any other part may be a
    secret."""
    m = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]{0,30})://", url)
    return f"{m[1]}://****" if m else "(not a URL: no scheme://)"


def parse(url: str):
    """The apprise plugin for `url`, or None when apprise cannot parse it."""
    import apprise  # 0.1–0.15 s: only when a URL is really parsed, not for the staff outbox
    url = url.strip()
    with _hiding([(url, masked_invalid(url))] if url else []):
        return apprise.Apprise.instantiate(url) if url else None


def known_scheme(scheme: str) -> bool:
    """Whether apprise has a plugin for `scheme` (tgram, discord...): a typo in the configuration
    would otherwise refuse every handle of that network."""
    from apprise.manager_plugins import NotificationManager
    return scheme.lower() in NotificationManager().schemas()


def public_url(url: str) -> str:
    """`url` with its secrets masked (apprise's `url(privacy=True)`), safe for logs and evidence."""
    service = parse(url)
    return service.url(privacy=True) if service is not None else masked_invalid(url)


def invalid(url: str) -> Result:
    """The permanent failure of a URL apprise cannot parse, naming only its scheme."""
    shown = masked_invalid(url)
    return Result(
        status=FAILED, provider=PROVIDER, code=INVALID_URL, permanent=True,
        detail=f"{shown} is not a URL apprise can send to: check its scheme and the parts "
               "that service requires",
        evidence={"url": shown, "note": NO_PROVIDER_ID},
    )


def send_apprise(url: str, title: str, body: str, body_format: str = "text") -> Result:
    """Send one message to one apprise URL and report what apprise said.

    `body_format` is apprise's: "text", "html" or "markdown" (anything else is a bug: ValueError).
    A URL apprise cannot parse is a permanent failure; a failed send of a valid URL is temporary.
    `evidence` holds the masked URL, the service name, apprise's status and its log lines.
    """
    import apprise
    fmt = apprise.NotifyFormat(body_format)
    service = parse(url)
    if service is None:
        return invalid(url)
    shown = service.url(privacy=True)
    sender = apprise.Apprise()
    sender.add(service)
    with _hiding(_secrets(url.strip(), shown, service)):
        with sender.notify(body=body, title=title, body_format=fmt, log_level=logging.INFO) as outcome:
            ok = bool(outcome)
            status = outcome.status.name
            lines = [_line(entry) for entry in outcome.logs()]
            # The service's own lines say what happened; apprise's call lines ("Notifying 1
            # service(s).") matter only when the service has none (the call never reached it).
            said = [_line(entry) for result in outcome for entry in result.logs()] or lines
    name = service.service_name or service.protocol
    if ok:
        detail = "; ".join(said) or f"{name} accepted the message (apprise reports success only)"
    else:
        detail = "; ".join(said) or f"{name}: apprise reported {status} without a reason"
    return Result(
        status=SENT if ok else FAILED,
        provider=PROVIDER,
        code=None if ok else status,
        detail=detail,
        permanent=False,
        evidence={"url": shown, "service": name, "apprise_status": status, "log": lines,
                  "note": NO_PROVIDER_ID},
    )


def _line(entry) -> str:
    return f"{entry.level}: {entry.message}"


def _secrets(url: str, shown: str, service) -> list[tuple[str, str]]:
    """The raw URL and every value the plugin declares private (tokens, passwords), with masks."""
    pairs = [(url, shown)]
    for key, spec in getattr(service, "template_tokens", {}).items():
        if not spec.get("private"):
            continue
        value = getattr(service, spec.get("map_to", key), None)
        for item in value if isinstance(value, (list, tuple, set)) else [value]:
            # Very short values ("1", "no") would mask ordinary words in every line.
            if isinstance(item, str) and len(item) >= 4:
                pairs.append((item, "****"))
    return pairs
