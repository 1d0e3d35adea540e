"""What the cycle and daemon tests share: billing data, a config, and reading the attempt log."""
from __future__ import annotations

import json
from pathlib import Path

CONFIG = """
[cycle]
workers = 4
backoff = 0.2
every_minutes = 1

[channels.whatsapp]
freeform = true
rate = 0

[channels.sms]
rate = 0
"""
# WhatsApp as an approved template: one message per notice, so a server's count is the notices'.
TEMPLATE_CONFIG = CONFIG.replace("freeform = true", "freeform = false") + """
[channels.whatsapp.templates.overdue]
content_sid = "HX0123456789abcdef0123456789abcdef"
variables = { "1" = "{{ customer }}", "2" = "{{ total }}" }
"""


def account(id_, emails=None, whatsapp=None, social=None, **extra) -> dict:
    acc = {"id": id_, "company": f"{id_.title()} Ltda", "document": "11.222.333/0001-81",
           "emails": emails or [f"financeiro@{id_}.com.br"], "due_day": 20, **extra}
    if whatsapp:
        acc["whatsapp"] = whatsapp
    if social:
        acc["social"] = social
    return acc


def invoice(account_id: str, paid=None) -> dict:
    inv = {"id": f"2026-11-{account_id}", "account": account_id, "amount": "149.90", "issued": "2026-11-05"}
    if paid:
        inv["paid"] = paid
    return inv


def setup(cli, accounts: list[dict], config: str = CONFIG, paid: dict | None = None) -> None:
    """Billing data imported on 10/11/2026 (each account one invoice due 20/11, overdue on 24/11)."""
    paid = paid or {}
    billing = {"accounts": accounts, "invoices": [invoice(a["id"], paid.get(a["id"])) for a in accounts]}
    (cli.workdir / "billing.json").write_text(json.dumps(billing), encoding="utf-8")
    (cli.workdir / "notifier.toml").write_text(config, encoding="utf-8")
    cli.env["NOTIFIER_CONFIG"] = "notifier.toml"
    cli("import", "billing.json", "--date", "2026-11-10")


def records(workdir: Path) -> list[dict]:
    path = workdir / "attempts.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def outcomes(workdir: Path) -> list[tuple[str, str, str, str]]:
    """(event, channel, recipient, stage) of every outcome in the log, with its claim's fields."""
    recs = records(workdir)
    claims = {r["id"]: r for r in recs if r["event"] == "sending"}
    return [(r["event"], claims[r["ref"]]["channel"], claims[r["ref"]]["recipient"], claims[r["ref"]].get("stage"))
            for r in recs if r.get("ref") in claims]


def ledger(workdir: Path) -> dict:
    return json.loads((workdir / "state.json").read_text(encoding="utf-8"))["ledger"]
