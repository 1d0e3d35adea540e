"""What happened after a send (operations): delivery statuses from Twilio, e-mail bounces."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from .base import Context, cli


def _show(records) -> None:
    for r in records:
        code = f" ({r['code']})" if r.get("code") else ""
        click.echo(f"{r['ref']} {r['channel']} → {r['recipient']}: {r['event']}{code} {r.get('detail') or ''}".rstrip())


@cli.command("poll-status")
@click.option("--max-age-hours", type=click.IntRange(1, 24 * 30), default=72, show_default=True,
              help="Stop asking about a message this long after Twilio accepted it.")
@click.pass_obj
def poll_status(obj: Context, max_age_hours):
    """Ask Twilio about every WhatsApp/SMS not yet delivered, read or failed, and append each
    change (delivered, read, undelivered, failed with Twilio's error code) to the log."""
    from notifier.log.statuses import Tracker, poll_with_channels
    tracker = Tracker(obj.log(), timedelta(hours=max_age_hours))
    now = obj.now()
    asked = len(tracker.pending(now))
    records = poll_with_channels(tracker, obj.config, now)
    _show(records)
    click.echo(f"{asked} message(s) not final asked about; {len(records)} status change(s) recorded")


@cli.command("serve-webhooks")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to listen on.")
@click.pass_obj
def serve_webhooks(obj: Context, listen):
    """Receive Twilio's status callbacks (signed with the auth token) and append each delivery
    status to the log. Give Twilio the public URL as `status_callback` in [channels.whatsapp] and
    [channels.sms], and as the senders' incoming-message webhook: a "SAIR" reply opts the number
    out of that channel. Put this behind your HTTPS reverse proxy."""
    from notifier.log.statuses import Tracker
    from notifier.log.webhooks import CallbackHandler, make_server, parse_listen
    token = obj.config.env.get("TWILIO_AUTH_TOKEN")
    urls = [u for name in ("whatsapp", "sms") if (u := obj.config.channels.get(name, {}).get("status_callback"))]
    if not token:
        raise click.ClickException("TWILIO_AUTH_TOKEN is not set: callbacks cannot be checked, so none is accepted")
    if not urls:
        raise click.ClickException("no status_callback in [channels.whatsapp] or [channels.sms]: Twilio would post nothing")
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    from notifier.staff.optout import record_stop_message
    store, log = obj.store(), obj.log()
    handler = CallbackHandler(Tracker(log), token, urls, obj.now,
                              lambda sender, body: record_stop_message(store, log, sender, body, obj.now()))
    server = make_server(host, port, handler)
    click.echo(f"listening on {host}:{server.server_address[1]} for {', '.join(urls)}", err=True)
    _stop_on_sigterm(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    click.echo("stopped", err=True)


def _stop_on_sigterm(server) -> None:
    """systemd and Docker stop a service with SIGTERM, which by default kills the process where it
    stands, perhaps between a callback's log record and its answer. Stop as on Ctrl-C instead: the
    request being handled finishes, then the loop ends. `shutdown()` waits for the loop, so it is
    called from another thread, never from the handler (the loop's own thread)."""
    import signal
    import threading
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())


@cli.command("read-bounces")
@click.option("--maildir", type=click.Path(file_okay=False, path_type=Path),
              help="Read DSNs from this Maildir (default: bounce_maildir in [channels.email], else BOUNCE_IMAP_URL).")
@click.pass_obj
def read_bounces(obj: Context, maildir):
    """Read new delivery status notifications (bounces) and append a `bounced` record to each
    e-mail attempt they name; a hard bounce is a staff task to fix the billing e-mail."""
    from notifier.log.bounces import BounceError, ImapSource, MaildirSource, read_bounces as read
    folder = maildir or obj.config.channels.get("email", {}).get("bounce_maildir")
    imap_url = obj.config.env.get("BOUNCE_IMAP_URL")
    if not folder and not imap_url:
        raise click.ClickException("no bounce source: pass --maildir, set bounce_maildir in [channels.email], "
                                   "or set BOUNCE_IMAP_URL")
    try:
        outcome = read(MaildirSource(Path(folder)) if folder else ImapSource(imap_url), obj.log(), obj.now())
    except BounceError as exc:
        raise click.ClickException(str(exc)) from None
    records, unmatched, bounces = outcome.records, outcome.unmatched, outcome.bounces
    for r in records:
        kind = "hard: staff task to fix the billing e-mail" if r["hard"] else "soft"
        click.echo(f"{r['ref']} {r['account']} {r['recipient']}: bounced {r['status']} ({kind}) {r['detail']}".rstrip())
    for b in unmatched:
        click.echo(f"  no attempt found for the bounce of {b.recipient} ({b.status}, Message-ID {b.message_id})", err=True)
    click.echo(f"{len(bounces)} bounce(s) read, {len(records)} recorded, {len(unmatched)} unmatched")
