"""The console's users: one JSON file beside the state (`state.json.users`), mode 0600.

Each user has a role, an argon2id password hash, optionally a TOTP secret with hashed recovery
codes, a `disabled` flag, failed-try counters and a `generation` that every change which must end
the user's sessions (disable, reset of 2FA, new password) moves on: a session remembers the
generation it started with, and the console compares it with the file on each request.

A user may also hold one API token (`new_token`; the JSON API, notifier/web/api.py): only its
sha256 is kept. An API-only user (`api_only`: a billing system, a script) has no password and
cannot log in to the console; it acts through its token alone.

The CLI (`notifier users ...`) and the console change the file in separate processes: every change
is a read-modify-write under an exclusive flock on `state.json.users.lock`, and the file is
replaced atomically, so a reader never sees half of it. Readers re-read only when the file's
stamp changed (a `stat` per request).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import orjson
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from notifier.staff.actor import Actor

ROLES = ("support", "finance", "admin")
MAX_FAILED = 5  # failed tries before the name is locked
LOCK_FOR = timedelta(minutes=15)
RECOVERY_CODES = 10

# argon2id at OWASP's minimum (19 MiB, 2 passes, 1 lane; its Password Storage Cheat Sheet). The
# library's default (RFC 9106's 64 MiB profile) held 64 MB at every login, a fifth of the console's
# memory budget at a large company's size. A hash made with other parameters still opens the
# console, and is replaced at its owner's next login (`needs_rehash`).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class UserError(Exception):
    """A change a person asked for that cannot be made (an unknown name, a bad role...)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password: str  # argon2id hash
    totp: str | None = None  # base32 secret
    recovery: tuple[str, ...] = ()  # sha256 of each unused recovery code
    disabled: bool = False
    failed: int = 0
    locked_until: str | None = None  # UTC ISO time
    totp_last: int = 0  # the last accepted TOTP time step (a code is used once)
    generation: int = 0
    created: str = ""
    api_only: bool = False  # no password: the JSON API with a token only (a billing system, a script)
    token_hash: str | None = None  # sha256 of the user's one API token
    token_created: str | None = None  # UTC ISO time

    @property
    def login_allowed(self) -> bool:
        """May log in to the console (an API-only user has no password to log in with)."""
        return not self.api_only and not self.disabled

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < datetime.fromisoformat(self.locked_until)


@dataclass(frozen=True)
class Users:
    users: dict[str, User] = field(default_factory=dict)
    require_totp: bool = False  # an admin's choice: nobody logs in without a second factor


def users_path(state: Path) -> Path:
    return state.with_name(state.name + ".users")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(user: User) -> bool:
    """Whether the user's password hash was made with other parameters than today's `_hasher`."""
    try:
        return bool(user.password) and _hasher.check_needs_rehash(user.password)
    except InvalidHashError:
        return False


def password_ok(user: User | None, password: str) -> bool:
    try:
        return _hasher.verify(user.password if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def hash_code(code: str) -> str:
    """Recovery codes are 80 random bits: a plain sha256 is enough (no dictionary to guess from)."""
    return hashlib.sha256(code.strip().lower().replace("-", "").encode()).hexdigest()


def new_recovery_codes() -> list[str]:
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    return [f"{c[:5]}-{c[5:]}" for c in codes]


TOKEN_PREFIX = "dn_"  # says what a leaked token is (a secret scanner, a person reading a config file)


def new_token_text() -> str:
    """256 random bits: a plain sha256 of it is enough to keep (nothing to guess from)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_password_rules(password: str) -> None:
    if len(password) < 10:
        raise UserError("the password must have at least 10 characters")


class UserStore:
    """The users file of one state. `read()` is cheap when nothing changed."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._seen: tuple[tuple | None, Users] | None = None

    def read(self) -> Users:
        stamp = self._stamp()
        if self._seen is not None and self._seen[0] == stamp:
            return self._seen[1]
        users = self._load()
        self._seen = (stamp, users)
        return users

    def get(self, name: str) -> User | None:
        return self.read().users.get(name)

    def by_token(self, token: str) -> User | None:
        """The user whose API token `token` is (disabled or not: the caller decides), or None."""
        if not token:
            return None
        hashed = hash_token(token)
        return next((u for u in self.read().users.values()
                     if u.token_hash and secrets.compare_digest(u.token_hash, hashed)), None)

    @contextmanager
    def change(self) -> Iterator[dict]:
        """Read, let the caller change the `{"users": {...}, "require_totp": ...}` dict, write it
        back atomically; all under the exclusive lock shared with other processes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = self._load()
            data = {"users": dict(current.users), "require_totp": current.require_totp}
            yield data
            self._write(Users(data["users"], data["require_totp"]))
        finally:
            os.close(fd)

    def update(self, name: str, end_sessions: bool = False, **changes) -> User:
        """Change one user's fields; `end_sessions` moves the generation on (see the module)."""
        with self.change() as data:
            user = data["users"].get(name)
            if user is None:
                raise UserError(f"no user {name!r}")
            if end_sessions:
                changes["generation"] = user.generation + 1
            data["users"][name] = user = replace(user, **changes)
        return user

    def _stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load(self) -> Users:
        try:
            raw = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return Users()
        except orjson.JSONDecodeError as exc:
            raise UserError(f"{self.path}: not a users file ({exc})") from None
        try:
            users = {name: User(**{**u, "recovery": tuple(u.get("recovery", ()))}) for name, u in raw["users"].items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{self.path}: not a users file (bad record: {exc})") from None
        return Users(users, bool(raw.get("require_totp")))

    def _write(self, users: Users) -> None:
        blob = orjson.dumps({"require_totp": users.require_totp,
                             "users": {n: asdict(u) for n, u in sorted(users.users.items())}},
                            option=orjson.OPT_INDENT_2)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, blob)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._seen = None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def record(log, actor: Actor, event: str, **fields) -> None:
    """A console event in the attempt log, signed by `actor` (never with a password)."""
    log.note(utc_now(), event, {**actor.fields(), **fields}, actor=actor.name)


def add_user(store: UserStore, log, actor: Actor, name: str, role: str, password: str,
             totp: bool = False, api_only: bool = False) -> tuple[User, list[str]]:
    """A new user; with `totp`, a fresh secret and the recovery codes (returned once, in clear).
    `api_only`: no password and no second factor; the user acts through its API token alone."""
    if not name or len(name) > 64 or not name.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise UserError(f"{name!r}: a user name is 1 to 64 letters, digits, '.', '-' or '_'")
    if role not in ROLES:
        raise UserError(f"{role!r}: the role is one of {', '.join(ROLES)}")
    if api_only and totp:
        raise UserError("an API-only user has no login, so no second factor")
    if not api_only:
        check_password_rules(password)
    codes = new_recovery_codes() if totp else []
    user = User(name=name, role=role, password="" if api_only else hash_password(password),
                totp=pyotp.random_base32() if totp else None, recovery=tuple(hash_code(c) for c in codes),
                created=utc_now().isoformat(timespec="seconds"), api_only=api_only)
    with store.change() as data:
        if name in data["users"]:
            raise UserError(f"a user {name!r} exists already")
        data["users"][name] = user
    record(log, actor, "user_added", user=name, user_role=role, totp=totp, **({"api_only": True} if api_only else {}))
    return user, codes


def new_token(store: UserStore, log, actor: Actor, name: str) -> tuple[str, User]:
    """A new API token for `name`, returned in clear this once (only its sha256 is kept). A user
    has one token: a new one replaces the one they had, which stops working at once (one place
    to look when a token leaks, one line to revoke). Returns the token and the user as they were
    before, so the caller can say what it replaced. Recorded, never with the token or its hash."""
    token = new_token_text()
    with store.change() as data:
        before = data["users"].get(name)
        if before is None:
            raise UserError(f"no user {name!r}")
        if before.disabled:
            raise UserError(f"{name} is disabled: a token of theirs would not work")
        data["users"][name] = replace(before, token_hash=hash_token(token),
                                      token_created=utc_now().isoformat(timespec="seconds"))
    record(log, actor, "user_token_created", user=name, user_role=before.role, replaced=before.token_hash is not None)
    return token, before


def revoke_token(store: UserStore, log, actor: Actor, name: str) -> User:
    """`name`'s API token stops working at once (the console re-reads the users file when it
    changes). UserError when they have none. Recorded."""
    with store.change() as data:
        before = data["users"].get(name)
        if before is None:
            raise UserError(f"no user {name!r}")
        if before.token_hash is None:
            raise UserError(f"{name} has no API token")
        data["users"][name] = replace(before, token_hash=None, token_created=None)
    record(log, actor, "user_token_revoked", user=name, user_role=before.role, created=before.token_created)
    return before


def disable_user(store: UserStore, log, actor: Actor, name: str) -> None:
    """The user can no longer log in, and their open sessions end at their next request. The last
    active admin stays: nobody could manage the users after them (the CLI could, but say it)."""
    admins = [u.name for u in store.read().users.values() if u.role == "admin" and u.login_allowed]
    if admins == [name]:
        raise UserError(f"{name} is the last active admin; add another admin before disabling them")
    store.update(name, end_sessions=True, disabled=True)
    record(log, actor, "user_disabled", user=name)


def reset_totp(store: UserStore, log, actor: Actor, name: str) -> tuple[User, list[str]]:
    """A new TOTP secret and recovery codes (a lost phone); the user's sessions end."""
    codes = new_recovery_codes()
    user = store.update(name, end_sessions=True, totp=pyotp.random_base32(),
                        recovery=tuple(hash_code(c) for c in codes), totp_last=0)
    record(log, actor, "user_2fa_reset", user=name)
    return user, codes


def require_totp(store: UserStore, log, actor: Actor, on: bool) -> None:
    """Make a second factor mandatory: a user without one sets it up at the next login."""
    with store.change() as data:
        data["require_totp"] = on
    record(log, actor, "users_2fa_required" if on else "users_2fa_optional")


def totp_uri(user: User, issuer: str) -> str:
    return pyotp.TOTP(user.totp).provisioning_uri(name=user.name, issuer_name=issuer)
