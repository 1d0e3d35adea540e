"""The cycle's e-mails through apprise, for scale (issue 8: "apprise, which opens a connection and
loads its plugins for every message, reaches about a tenth of that limit").

    python bench/apprise_cycle.py [N] [--sample S]

N accounts with one open invoice each are imported (as bench/cycle.py does) and the reminders of
17/11/2026 rendered by the real renderer. Then, to the same local SMTP server (bench/cycle.py's,
in its own process, answering at once):
1. plain `smtplib` over one connection, the first S messages composed by our e-mail channel (the
   local limit, the baseline);
2. apprise: for each of the same S messages a fresh `Apprise` with a `mailto://` URL to the local
   server and `notify(title=subject, body=text)` (apprise composes its own MIME), which is how a
   cycle built on apprise would send.
S defaults to 300: apprise costs a fifth of a second per message here (a profile shows most of it
in `ssl.SSLContext.set_default_verify_paths`: its SMTP controller builds an SSL context, loading
the system's CA store, for every message, even with mode=insecure), so 10,000 would take half an
hour; the throughput per message is what is compared.
"""
from __future__ import annotations

import argparse
import json
import os
import smtplib
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import emit  # noqa: E402
from bench.cycle import SENDER, Server, billing, cli  # noqa: E402

DAY = date(2026, 11, 17)
FROM = "cobranca@lucanet.com.br"


def rendered(state: Path, limit: int) -> list[tuple[str, str, str, bytes]]:
    """The first `limit` messages of the day's cycle: (recipient, subject, text, composed .eml)."""
    from notifier.channels.email import EmailChannel
    from notifier.billing import rules
    from notifier.config import Config
    from notifier.run.render import Renderer
    from notifier.state.store import Store
    config = Config(state=state)
    snap = Store(state).snapshot()
    plan = rules.plan_day(DAY, snap.accounts(), snap.invoices(), snap.histories(), snap.ledger(), config.calendar,
                          config)
    renderer, email = Renderer(config), EmailChannel(config)
    out = []
    for n in plan.notices[:limit]:
        m = renderer.render(n, snap.account(n.account), snap.invoices(n.account), DAY)
        out.append((n.recipient, m.subject, m.text, bytes(email.compose(m, SENDER))))
    return out


def by_smtplib(port: int, messages) -> float:
    began = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for recipient, _, _, data in messages:
            smtp.sendmail(FROM, [recipient], data)
    return time.perf_counter() - began


def by_apprise(port: int, messages) -> float:
    import apprise
    began = time.perf_counter()
    for recipient, subject, text, _ in messages:
        a = apprise.Apprise()
        a.add(f"mailto://127.0.0.1:{port}?mode=insecure&from={quote(FROM)}&to={quote(recipient)}")
        if not a.notify(body=text, title=subject):
            raise SystemExit(f"apprise could not send to {recipient}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=10_000, help="accounts imported (the cycle's size)")
    parser.add_argument("--sample", type=int, default=300, help="messages sent each way")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-apprise-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "TWILIO_", "STAFF_", "NOTIFIER_"))}
        env["PYTHONPATH"] = str(ROOT)
        (work / "billing.json").write_text(json.dumps(billing(args.n)), encoding="utf-8")
        cli(work, env, "import", "billing.json", "--date", "2026-11-10")
        messages = rendered(work / "state.json", args.sample)
        server = Server(0.0)
        try:
            plain = by_smtplib(server.port, messages)
            slow = by_apprise(server.port, messages)
        finally:
            received = server.stop()
        if received != 2 * len(messages):
            raise SystemExit(f"{received} of {2 * len(messages)} messages arrived")
    s = len(messages)
    print(f"{s} messages: plain smtplib {s / plain:.0f} msg/s, apprise mailto {s / slow:.1f} msg/s "
          f"({(s / slow) / (s / plain):.3f}x the local limit)")
    emit("apprise.throughput", s / slow, "msg/s", s / plain, area="Cycle",
         label=f"apprise mailto, {s:,} of the cycle's messages", baseline_label="plain smtplib, one connection",
         note="for scale (issue 8 expected about 0.1x); apprise builds an SSL context, loading the CA store, "
              "for every message even with mode=insecure", echo=True)


if __name__ == "__main__":
    main()
