"""`notifier web` (the console) and `notifier users ...` (its users)."""
from __future__ import annotations

import getpass
import sys

import click

from .base import Context, cli, date_option, print_table


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 only behind a TLS proxy or in a container).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@date_option("Show the console as of this day (YYYY-MM-DD; env NOTIFIER_DATE), for a demo or a test; default: today.")
@click.pass_obj
def web(obj: Context, host, port, day):
    """The console for support, finance and admins (a browser at http://HOST:PORT/)."""
    import uvicorn
    from notifier.web.app import build, fewer_malloc_arenas
    fewer_malloc_arenas()
    from notifier.web.users import UserStore, users_path
    obj.store()  # the state must exist: a mistyped --state would be a console of nothing
    UserStore(users_path(obj.config.state)).read()  # a damaged users file: said now, not at the first login
    if not users_path(obj.config.state).exists():
        click.echo(f"warning: no users yet; add one with `notifier --state {obj.config.state} users add NAME "
                   "--role admin`", err=True)
    # One process, one event loop: sessions live in its memory (see notifier/web/auth.py).
    import threading
    app = build(obj.config, day)
    # The first pages' one-time work (templates, log index, search index) while uvicorn starts.
    threading.Thread(target=app.state.web.warm, name="warm-up", daemon=True).start()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                proxy_headers=False, server_header=False)


@cli.group()
def users():
    """The console's users (kept beside the state, in STATE.users)."""


def _store_and_actor(obj: Context):
    from notifier.web.users import Actor, UserStore, users_path
    obj.store()
    # Who ran the command: the system user at the terminal (the CLI has no login of its own).
    return UserStore(users_path(obj.config.state)), Actor(getpass.getuser(), "cli", "terminal")


def _read_password() -> str:
    """From stdin when it is not a terminal (one line), else asked twice without echo."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["support", "finance", "admin"]), required=True, help="What the user may do.")
@click.option("--totp", is_flag=True, help="Also a TOTP secret (printed once, with the recovery codes).")
@click.option("--api-only", is_flag=True,
              help="No password and no console login: the JSON API only, with the token `users token NAME` gives "
                   "(a billing system, a script).")
@click.pass_obj
def users_add(obj: Context, name, role, totp, api_only):
    """Add a user; the password is read from stdin (or asked twice on a terminal), never an argument."""
    from notifier.web.users import add_user, totp_uri
    store, actor = _store_and_actor(obj)
    user, codes = add_user(store, obj.log(), actor, name, role, "" if api_only else _read_password(), totp=totp,
                           api_only=api_only)
    click.echo(f"user {name} added ({role}{', API only: create its token with `users token ' + name + '`' if api_only else ''})")
    if user.totp:
        _print_totp(user, codes, totp_uri(user, obj.config.company.name))


def _print_totp(user, codes, uri) -> None:
    click.echo(f"TOTP secret: {user.totp}\n  {uri}\nrecovery codes (each works once; shown only now):")
    for code in codes:
        click.echo(f"  {code}")


@users.command("list")
@click.pass_obj
def users_list(obj: Context):
    """Every user: role, second factor, disabled, locked."""
    from notifier.web.users import utc_now
    store, _ = _store_and_actor(obj)
    listed = store.read()
    now = utc_now()
    print_table(["name", "role", "totp", "disabled", "locked until", "api token since"],
                [[u.name + (" (API only)" if u.api_only else ""), u.role, "yes" if u.totp else "",
                  "yes" if u.disabled else "", u.locked_until if u.locked(now) else "", u.token_created or ""]
                 for u in sorted(listed.users.values(), key=lambda u: u.name)])
    click.echo(f"second factor: {'required' if listed.require_totp else 'optional'}")


@users.command("disable")
@click.argument("name")
@click.pass_obj
def users_disable(obj: Context, name):
    """Disable a user: no more logins, and their open sessions end at once."""
    from notifier.web.users import disable_user
    store, actor = _store_and_actor(obj)
    disable_user(store, obj.log(), actor, name)
    click.echo(f"user {name} disabled")


@users.command("reset-2fa")
@click.argument("name")
@click.pass_obj
def users_reset_2fa(obj: Context, name):
    """A new TOTP secret and recovery codes for NAME (a lost phone); their sessions end."""
    from notifier.web.users import reset_totp, totp_uri
    store, actor = _store_and_actor(obj)
    user, codes = reset_totp(store, obj.log(), actor, name)
    _print_totp(user, codes, totp_uri(user, obj.config.company.name))


@users.command("require-2fa")
@click.argument("setting", type=click.Choice(["on", "off"]))
@click.pass_obj
def users_require_2fa(obj: Context, setting):
    """Make the second factor mandatory (on): a user without one sets it up at the next login."""
    from notifier.web.users import require_totp
    store, actor = _store_and_actor(obj)
    require_totp(store, obj.log(), actor, setting == "on")
    click.echo(f"second factor: {'required' if setting == 'on' else 'optional'}")


@users.command("token")
@click.argument("name")
@click.pass_obj
def users_token(obj: Context, name):
    """A new JSON API token for NAME, with NAME's role: printed alone on stdout, once (only its
    hash is kept), so `TOKEN=$(notifier users token billing)` works. A user has one token: this
    one replaces the one they had, which stops working at once."""
    from notifier.web.users import new_token
    store, actor = _store_and_actor(obj)
    token, before = new_token(store, obj.log(), actor, name)
    click.echo(token)
    click.echo(f"API token for {name} ({before.role}): shown only now; send it as `Authorization: Bearer TOKEN`"
               + (f"; it replaces the token created {before.token_created}, which no longer works"
                  if before.token_hash else ""), err=True)


@users.command("revoke-token")
@click.argument("name")
@click.pass_obj
def users_revoke_token(obj: Context, name):
    """NAME's JSON API token stops working at once."""
    from notifier.web.users import revoke_token
    store, actor = _store_and_actor(obj)
    before = revoke_token(store, obj.log(), actor, name)
    click.echo(f"API token of {name} (created {before.token_created}) revoked")
