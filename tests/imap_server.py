"""A small real IMAP4rev1 server (RFC 3501) on 127.0.0.1 for tests, in threads of the test process.

It speaks the part of the protocol a mail client such as stdlib `imaplib` uses to read a mailbox:
CAPABILITY, NOOP, LOGOUT, LOGIN, AUTHENTICATE PLAIN, SELECT / EXAMINE, SEARCH and UID SEARCH (flags, keywords, header
and sequence/UID criteria with NOT, OR and groups), FETCH and UID FETCH (UID, FLAGS, INTERNALDATE,
RFC822, RFC822.HEADER, RFC822.TEXT, RFC822.SIZE, BODY[...] and BODY.PEEK[...] with HEADER, TEXT,
HEADER.FIELDS and partial ranges), STORE and UID STORE (+FLAGS, -FLAGS, FLAGS, .SILENT), EXPUNGE
and CLOSE, literals in commands, and implicit TLS (imaps) with a certificate. Mailboxes live in
memory and are shared by every connection; every command line is recorded.

    with ImapServer(users={"bounces": "s3cret"}) as server:
        server.add("INBOX", raw_message_bytes)
        env["BOUNCE_IMAP_URL"] = server.url("bounces", "s3cret")
        ...
        server.mailbox("INBOX")[0].flags      # {"\\Seen"}
        server.commands                         # ["LOGIN bounces \"s3cret\"", "SELECT \"INBOX\"", ...]
"""
from __future__ import annotations

import base64
import re
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from urllib.parse import quote

CAPABILITIES = "IMAP4rev1 LITERAL+ AUTH=PLAIN"
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


@dataclass
class Mail:
    uid: int
    data: bytes
    flags: set[str] = field(default_factory=set)
    internaldate: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def header(self) -> bytes:
        """The header, with the blank line that ends it (RFC 3501's BODY[HEADER])."""
        at = self.data.find(b"\r\n\r\n")
        return self.data if at < 0 else self.data[:at + 4]

    @property
    def text(self) -> bytes:
        at = self.data.find(b"\r\n\r\n")
        return b"" if at < 0 else self.data[at + 4:]

    def header_value(self, name: str) -> str:
        values = BytesHeaderParser().parsebytes(self.header).get_all(name) or []
        return " ".join(str(v) for v in values)


@dataclass
class Mailbox:
    mails: list[Mail] = field(default_factory=list)
    uidvalidity: int = 1
    uidnext: int = 1


class ProtocolError(Exception):
    """A command this server cannot make sense of: answered BAD."""


class ImapServer:
    """Context manager: `users` ({login: password}); `cert` = (certfile, keyfile) makes it imaps
    (TLS from the first byte, as on port 993); `greet=False` accepts connections and never says a
    word (a server that hangs, for timeouts)."""

    def __init__(self, users=None, cert=None, greet: bool = True):
        self.users = dict(users or {"bounces": "secret"})
        self.greet = greet
        self.context = None
        if cert:
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.context.load_cert_chain(*cert)
        self.mailboxes: dict[str, Mailbox] = {"INBOX": Mailbox()}
        self.commands: list[str] = []
        self.logins: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._server = _TcpServer(("127.0.0.1", 0), _Session)
        self._server.imap = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "ImapServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, user: str, password: str, mailbox: str = "INBOX", **params: str) -> str:
        """A BOUNCE_IMAP_URL for this server (imaps:// when it has a certificate)."""
        scheme = "imaps" if self.context else "imap"
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return (f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/"
                f"{quote(mailbox)}" + (f"?{query}" if query else ""))

    def add(self, mailbox: str, data: bytes, flags=()) -> Mail:
        """Deliver a message (bytes with CRLF line ends) into `mailbox`, creating it if need be."""
        with self.lock:
            box = self.mailboxes.setdefault(mailbox, Mailbox())
            mail = Mail(box.uidnext, data, set(flags))
            box.uidnext += 1
            box.mails.append(mail)
            return mail

    def mailbox(self, name: str = "INBOX") -> list[Mail]:
        with self.lock:
            return list(self.mailboxes[name].mails)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    imap: ImapServer


class _Session(socketserver.StreamRequestHandler):
    """One client connection: the states of RFC 3501 (not authenticated, authenticated, selected)."""

    timeout = 30

    def setup(self) -> None:
        imap: ImapServer = self.server.imap
        self.imap = imap
        self.user: str | None = None
        self.selected: Mailbox | None = None
        self.read_only = False
        if imap.context is not None:
            self.request.settimeout(self.timeout)
            try:
                self.request = imap.context.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError):
                self.request = None  # the client refused our certificate: nothing more to say
                return
        super().setup()

    def handle(self) -> None:
        if self.request is None:
            return
        if not self.imap.greet:
            try:
                self.request.recv(1)  # silent until the client gives up
            except OSError:
                pass
            return
        self.send(f"* OK [CAPABILITY {CAPABILITIES}] test IMAP4rev1 server ready")
        while True:
            try:
                line = self.read_command()
            except (OSError, ValueError):
                return
            if line is None:
                return
            tag, _, rest = line.partition(b" ")
            tag = tag.decode("ascii", "replace")
            if not rest:
                self.send(f"{tag or '*'} BAD missing command")
                continue
            with self.imap.lock:
                self.imap.commands.append(rest.decode("utf-8", "replace").rstrip("\r\n"))
            try:
                if self.dispatch(tag, rest):
                    return
            except ProtocolError as exc:
                self.send(f"{tag} BAD {exc}")

    def finish(self) -> None:
        if self.request is not None:
            super().finish()

    # --- the wire --------------------------------------------------------------------------------

    def read_command(self) -> bytes | None:
        """One command with its literals spliced in, as on the wire ({n}CRLF then n bytes)."""
        data = b""
        while True:
            line = self.rfile.readline(1 << 16)
            if not line:
                return None
            data += line
            literal = re.search(rb"\{(\d+)(\+?)\}\r\n$", line)
            if not literal:
                return data.rstrip(b"\r\n")
            if not literal[2]:
                self.send("+ go ahead")
            data += self.rfile.read(int(literal[1]))

    def send(self, text: str | bytes) -> None:
        self.wfile.write((text.encode("utf-8") if isinstance(text, str) else text) + b"\r\n")
        self.wfile.flush()

    # --- commands --------------------------------------------------------------------------------

    def dispatch(self, tag: str, rest: bytes) -> bool:
        """Run one command; True when the connection is to end."""
        args = Tokens(rest).all()
        name = _atom(args.pop(0)).upper()
        uid = False
        if name == "UID":
            if not args:
                raise ProtocolError("UID what?")
            name, uid = _atom(args.pop(0)).upper(), True
            if name not in ("FETCH", "SEARCH", "STORE"):
                raise ProtocolError(f"UID {name} is not supported")
        prefix = "UID " if uid else ""
        if name == "CAPABILITY":
            self.send(f"* CAPABILITY {CAPABILITIES}")
        elif name == "NOOP":
            if self.selected is not None:
                with self.imap.lock:
                    self.send(f"* {len(self.selected.mails)} EXISTS")
        elif name == "LOGOUT":
            self.send("* BYE logging out")
            self.send(f"{tag} OK LOGOUT completed")
            return True
        elif name == "LOGIN":
            if self.user is not None:
                raise ProtocolError("already logged in")
            if len(args) != 2:
                raise ProtocolError("LOGIN user password")
            return self.log_in(tag, _atom(args[0]), _atom(args[1]))
        elif name == "AUTHENTICATE":
            if self.user is not None or not args or _atom(args[0]).upper() != "PLAIN":
                raise ProtocolError("AUTHENTICATE PLAIN only, before logging in")
            if len(args) > 1:
                answer = _atom(args[1]).encode()
            else:
                self.send("+ ")
                answer = self.rfile.readline(1 << 16).strip()
            try:  # RFC 4616: authzid NUL authcid NUL password, in UTF-8
                _, user, password = base64.b64decode(answer, validate=True).decode("utf-8").split("\0")
            except ValueError:
                self.send(f"{tag} BAD [CLIENTBUG] not a PLAIN response")
                return False
            return self.log_in(tag, user, password)
        elif self.user is None:
            self.send(f"{tag} NO [CLIENTBUG] log in first")
            return False
        elif name in ("SELECT", "EXAMINE"):
            if len(args) != 1:
                raise ProtocolError(f"{name} mailbox")
            wanted = _atom(args[0])
            wanted = "INBOX" if wanted.upper() == "INBOX" else wanted
            with self.imap.lock:
                box = self.imap.mailboxes.get(wanted)
                if box is None:
                    self.selected = None
                    self.send(f"{tag} NO [NONEXISTENT] no mailbox {wanted}")
                    return False
                self.selected, self.read_only = box, name == "EXAMINE"
                unseen = next((i for i, m in enumerate(box.mails, 1) if "\\Seen" not in m.flags), None)
                self.send(f"* FLAGS ({' '.join(SYSTEM_FLAGS)})")
                self.send(f"* OK [PERMANENTFLAGS ({' '.join(SYSTEM_FLAGS)} \\*)] flags permitted")
                self.send(f"* {len(box.mails)} EXISTS")
                self.send("* 0 RECENT")
                if unseen:
                    self.send(f"* OK [UNSEEN {unseen}] first unseen")
                self.send(f"* OK [UIDVALIDITY {box.uidvalidity}] UIDs valid")
                self.send(f"* OK [UIDNEXT {box.uidnext}] predicted next UID")
            self.send(f"{tag} OK [{'READ-ONLY' if self.read_only else 'READ-WRITE'}] {name} completed")
            return False
        elif self.selected is None:
            self.send(f"{tag} NO [CLIENTBUG] select a mailbox first")
            return False
        elif name == "SEARCH":
            self.search(args, uid)
        elif name == "FETCH":
            self.fetch(args, uid)
        elif name == "STORE":
            if self.read_only:
                self.send(f"{tag} NO [READ-ONLY] mailbox opened with EXAMINE")
                return False
            self.store(args, uid)
        elif name in ("EXPUNGE", "CLOSE"):
            if not self.read_only:
                self.expunge(silent=name == "CLOSE")
            if name == "CLOSE":
                self.selected = None
        else:
            raise ProtocolError(f"{name} is not supported by this server")
        self.send(f"{tag} OK {prefix}{name} completed")
        return False

    def log_in(self, tag: str, user: str, password: str) -> bool:
        with self.imap.lock:
            self.imap.logins.append((user, password))
        if self.imap.users.get(user) != password:
            self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
        else:
            self.user = user
            self.send(f"{tag} OK logged in")
        return False

    def numbered(self):
        """(sequence number, mail) of the selected mailbox."""
        return list(enumerate(self.selected.mails, 1))

    def chosen(self, spec, uid: bool):
        numbered = self.numbered()
        if not numbered:
            return []
        top = numbered[-1][1].uid if uid else len(numbered)
        wanted = SequenceSet(_atom(spec), top)
        return [(n, m) for n, m in numbered if wanted.has(m.uid if uid else n)]

    def search(self, args: list, uid: bool) -> None:
        if len(args) >= 2 and isinstance(args[0], str) and args[0].upper() == "CHARSET":
            args = args[2:]
        with self.imap.lock:
            numbered = self.numbered()
            test = Criteria(args, numbered).build()
            found = [str(m.uid if uid else n) for n, m in numbered if test(n, m)]
        self.send("* SEARCH" + "".join(" " + x for x in found))

    def fetch(self, args: list, uid: bool) -> None:
        if len(args) != 2:
            raise ProtocolError("FETCH sequence-set items")
        items = args[1] if isinstance(args[1], list) else [args[1]]
        items = [_atom(i) for i in items]
        macros = {"ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"], "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
                  "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]}
        if len(items) == 1 and items[0].upper() in macros:
            items = macros[items[0].upper()]
        if uid and not any(i.upper() == "UID" for i in items):
            items = ["UID"] + items
        with self.imap.lock:
            for number, mail in self.chosen(args[0], uid):
                parts: list[bytes] = []
                seen_before = "\\Seen" in mail.flags
                for item in items:
                    parts.append(self.fetch_item(item, mail))
                if not seen_before and "\\Seen" in mail.flags and not any(i.upper() == "FLAGS" for i in items):
                    parts.append(b"FLAGS (" + " ".join(sorted(mail.flags)).encode() + b")")
                self.send(f"* {number} FETCH (".encode() + b" ".join(parts) + b")")

    def fetch_item(self, item: str, mail: Mail) -> bytes:
        upper = item.upper()
        if upper == "UID":
            return f"UID {mail.uid}".encode()
        if upper == "FLAGS":
            return b"FLAGS (" + " ".join(sorted(mail.flags)).encode() + b")"
        if upper == "INTERNALDATE":
            return b'INTERNALDATE "' + mail.internaldate.strftime("%d-%b-%Y %H:%M:%S +0000").encode() + b'"'
        if upper == "RFC822.SIZE":
            return f"RFC822.SIZE {len(mail.data)}".encode()
        simple = {"RFC822": (mail.data, True), "RFC822.HEADER": (mail.header, False), "RFC822.TEXT": (mail.text, True)}
        if upper in simple:
            data, marks = simple[upper]
            if marks and not self.read_only:
                mail.flags.add("\\Seen")
            return upper.encode() + _literal(data)
        body = re.fullmatch(r"BODY(\.PEEK)?\[([^\]]*)\](?:<(\d+)\.(\d+)>)?", item, re.IGNORECASE)
        if not body:
            raise ProtocolError(f"FETCH {item} is not supported")
        peek, section, start, length = body.groups()
        data = self.section(mail, section)
        name = f"BODY[{section}]"
        if start is not None:
            data = data[int(start):int(start) + int(length)]
            name += f"<{start}>"
        if not peek and not self.read_only:
            mail.flags.add("\\Seen")
        return name.encode() + _literal(data)

    def section(self, mail: Mail, section: str) -> bytes:
        upper = section.upper()
        if upper == "":
            return mail.data
        if upper == "HEADER":
            return mail.header
        if upper == "TEXT":
            return mail.text
        fields = re.fullmatch(r"HEADER\.FIELDS(\.NOT)? \(([^)]*)\)", section, re.IGNORECASE)
        if not fields:
            raise ProtocolError(f"BODY[{section}] is not supported")
        names = {n.lower() for n in fields[2].split()}
        keep_listed = not fields[1]
        out, keeping = [], False
        for line in mail.header.split(b"\r\n"):
            if line[:1] in (b" ", b"\t"):
                if keeping:
                    out.append(line)
                continue
            keeping = bool(line) and (line.split(b":", 1)[0].decode("ascii", "replace").strip().lower()
                                      in names) == keep_listed
            if keeping:
                out.append(line)
        return b"\r\n".join(out) + b"\r\n\r\n" if out else b"\r\n"

    def store(self, args: list, uid: bool) -> None:
        if len(args) != 3:
            raise ProtocolError("STORE sequence-set item flags")
        action = _atom(args[1]).upper()
        silent = action.endswith(".SILENT")
        action = action.removesuffix(".SILENT")
        if action not in ("FLAGS", "+FLAGS", "-FLAGS"):
            raise ProtocolError(f"STORE {action} is not supported")
        flags = {_atom(f) for f in (args[2] if isinstance(args[2], list) else [args[2]])}
        with self.imap.lock:
            for number, mail in self.chosen(args[0], uid):
                if action == "FLAGS":
                    mail.flags = set(flags)
                elif action == "+FLAGS":
                    mail.flags |= flags
                else:
                    mail.flags -= flags
                if not silent:
                    shown = " ".join(sorted(mail.flags))
                    self.send(f"* {number} FETCH ({f'UID {mail.uid} ' if uid else ''}FLAGS ({shown}))")

    def expunge(self, silent: bool) -> None:
        with self.imap.lock:
            box = self.selected
            gone = [n for n, m in self.numbered() if "\\Deleted" in m.flags]
            box.mails = [m for m in box.mails if "\\Deleted" not in m.flags]
        if not silent:
            for number in reversed(gone):  # highest first: each number is still valid when sent
                self.send(f"* {number} EXPUNGE")


def _literal(data: bytes) -> bytes:
    return f" {{{len(data)}}}\r\n".encode() + data


# --- parsing -------------------------------------------------------------------------------------


def _atom(value) -> str:
    """An atom, quoted string or literal (all str here); a list is a client's mistake."""
    if isinstance(value, list):
        raise ProtocolError("a list where an atom or a string was expected")
    return value


class Tokens:
    """The arguments of one command: atoms, quoted strings and literals (str), and parenthesised
    lists (list). An atom keeps a `[...]` section whole, spaces and all
    (BODY.PEEK[HEADER.FIELDS (FROM TO)])."""

    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def all(self) -> list:
        out = self.items(closing=False)
        if not out:
            raise ProtocolError("empty command")
        return out

    def items(self, closing: bool) -> list:
        out: list = []
        data = self.data
        while True:
            while self.at < len(data) and data[self.at:self.at + 1] == b" ":
                self.at += 1
            if self.at >= len(data):
                if closing:
                    raise ProtocolError("unbalanced parenthesis")
                return out
            char = data[self.at:self.at + 1]
            if char == b")":
                if not closing:
                    raise ProtocolError("unbalanced parenthesis")
                self.at += 1
                return out
            if char == b"(":
                self.at += 1
                out.append(self.items(closing=True))
            elif char == b'"':
                out.append(self.quoted())
            elif char == b"{":
                out.append(self.literal())
            else:
                out.append(self.atom())

    def quoted(self) -> str:
        self.at += 1
        value = bytearray()
        while self.at < len(self.data):
            char = self.data[self.at:self.at + 1]
            if char == b"\\":
                value += self.data[self.at + 1:self.at + 2]
                self.at += 2
                continue
            self.at += 1
            if char == b'"':
                return (value.decode("utf-8", "replace"))
            value += char
        raise ProtocolError("unterminated quoted string")

    def literal(self) -> str:
        found = re.match(rb"\{(\d+)\+?\}\r\n", self.data[self.at:])
        if not found:
            raise ProtocolError("bad literal")
        start = self.at + found.end()
        end = start + int(found[1])
        self.at = end
        return (self.data[start:end].decode("utf-8", "replace"))

    def atom(self) -> str:
        start, depth = self.at, 0
        while self.at < len(self.data):
            char = self.data[self.at:self.at + 1]
            if char == b"[":
                depth += 1
            elif char == b"]":
                depth -= 1
            elif depth == 0 and char in (b" ", b"(", b")"):
                break
            self.at += 1
        return self.data[start:self.at].decode("utf-8", "replace")


class SequenceSet:
    """`1:3,7,9:*` over sequence numbers or UIDs; `*` is the largest in the mailbox."""

    def __init__(self, text: str, top: int):
        self.ranges = []
        try:
            for piece in text.split(","):
                low, _, high = piece.partition(":")
                low_n = top if low == "*" else int(low)
                high_n = low_n if not high else (top if high == "*" else int(high))
                self.ranges.append((min(low_n, high_n), max(low_n, high_n)))
        except ValueError:
            raise ProtocolError(f"bad sequence set {text!r}") from None

    def has(self, n: int) -> bool:
        return any(low <= n <= high for low, high in self.ranges)


class Criteria:
    """SEARCH keys (RFC 3501 6.4.4) as a predicate on (sequence number, mail); keys in a row AND."""

    FLAG_KEYS = {"SEEN": "\\Seen", "ANSWERED": "\\Answered", "FLAGGED": "\\Flagged", "DELETED": "\\Deleted",
                 "DRAFT": "\\Draft"}
    HEADER_KEYS = ("FROM", "TO", "CC", "BCC", "SUBJECT")

    def __init__(self, args: list, numbered):
        self.args = list(args)
        self.top_seq = len(numbered)
        self.top_uid = numbered[-1][1].uid if numbered else 0

    def build(self):
        tests = []
        while self.args:
            tests.append(self.one())
        return lambda n, m: all(t(n, m) for t in tests)

    def take(self):
        if not self.args:
            raise ProtocolError("SEARCH: a key needs an argument")
        return self.args.pop(0)

    def one(self):
        arg = self.take()
        if isinstance(arg, list):
            inner = Criteria(arg, [])
            inner.top_seq, inner.top_uid = self.top_seq, self.top_uid
            return inner.build()
        key = _atom(arg).upper()
        if key == "ALL":
            return lambda n, m: True
        if key in ("NEW", "RECENT"):  # nothing is \Recent here (no session delivered it)
            return lambda n, m: False
        if key == "OLD":
            return lambda n, m: True
        if key in self.FLAG_KEYS:
            flag = self.FLAG_KEYS[key]
            return lambda n, m: flag in m.flags
        if key.startswith("UN") and key[2:] in self.FLAG_KEYS:
            flag = self.FLAG_KEYS[key[2:]]
            return lambda n, m: flag not in m.flags
        if key in ("KEYWORD", "UNKEYWORD"):
            word = _atom(self.take())
            return (lambda n, m: word in m.flags) if key == "KEYWORD" else (lambda n, m: word not in m.flags)
        if key == "NOT":
            inner = self.one()
            return lambda n, m: not inner(n, m)
        if key == "OR":
            left, right = self.one(), self.one()
            return lambda n, m: left(n, m) or right(n, m)
        if key in self.HEADER_KEYS or key == "HEADER":
            name = _atom(self.take()) if key == "HEADER" else key
            needle = _atom(self.take()).lower()
            return lambda n, m: needle in m.header_value(name).lower()
        if key == "UID":
            wanted = SequenceSet(_atom(self.take()), self.top_uid)
            return lambda n, m: wanted.has(m.uid)
        if re.fullmatch(r"[0-9*:,]+", key):
            wanted = SequenceSet(key, self.top_seq)
            return lambda n, m: wanted.has(n)
        raise ProtocolError(f"SEARCH {key} is not supported")


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released): connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
