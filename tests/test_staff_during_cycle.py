"""Staff actions during a cycle take effect at once (issue 18, point 1).

Real processes only: `run-once` sends the overdue notices of a few hundred accounts to a slow
local SMTP server (and WhatsApp to the Twilio-compatible server), and while it sends, `pay`,
`hold` and `opt-out` are run as an operator would, each on an account the cycle has not reached
yet. The promise under test: once a command has returned, no claim (`sending` record) for a notice
it stops is written. The log's length is read right after each command returns; any claim for a
stopped notice numbered after it is a breach (as is an e-mail the server received for it).
Rounds from the third on keep the state's changes in its journal (NOTIFIER_JOURNAL_FROM=0, as a
big state does): the cycle must see a command's journal entry before it claims again.
"""
from __future__ import annotations

import json
import os
import random
import shutil

import pytest

from tests.conftest import clean_cli
from tests.cycle_helpers import TEMPLATE_CONFIG, account, records, setup
from tests.fake_twilio import FakeTwilio
from tests.fault_helpers import start, wait_for
from tests.smtp_server import RecordingHandler, SmtpServer

DAY = "2026-11-24"  # overdue: e-mail to all, WhatsApp to every first-time delinquent that has a number
ACCOUNTS = 240
# Two rounds by default, a `run-once` and a `daemon` (with the cycle's re-check of the store broken,
# these two rounds found 4 breaches); NOTIFIER_STRESS=1 runs the six rounds of before (10 breaches then).
ROUNDS = 6 if os.environ.get("NOTIFIER_STRESS") else 2
IDS = [f"c{i:03}" for i in range(ACCOUNTS)]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("staff-during-cycle")
    setup(clean_cli(folder), [account(a, whatsapp=f"+55119{i:08}" if i % 2 == 0 else None) for i, a in enumerate(IDS)],
          config=TEMPLATE_CONFIG)
    return folder


def _log_length(work) -> int:
    path = work / "attempts.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _bytes(path) -> bytes:
    """A file's bytes, or none when it is a folder or was renamed away since it was listed (the
    state's temporary file, a moment before it replaces the state)."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return b""


def _stops(action: str, acc: str, claim: dict) -> bool:
    """Whether `action` on account `acc` stops the notice of `claim`."""
    if claim.get("account") != acc:
        return False
    return action in ("pay", "hold") or claim.get("channel") == "whatsapp"


def test_no_claim_for_a_stopped_notice_after_the_command_returned(imported, tmp_path):
    rng = random.Random("staff-during-cycle")
    breaches, fired = [], 0
    for round_ in range(ROUNDS):
        work = tmp_path / f"round{round_}"
        shutil.copytree(imported, work)
        cli = clean_cli(work)
        cli.env["NOTIFIER_CONFIG"] = "notifier.toml"
        if round_ >= 2:
            cli.env["NOTIFIER_JOURNAL_FROM"] = "0"
        with SmtpServer(RecordingHandler(delay=0.06)) as smtp, FakeTwilio() as twilio:
            cli.env.update(twilio.env(), EMAIL_URL=smtp.url(), TUTORIAL_URL="https://www.lucanet.com.br/cobranca")
            errors = work / "cycle.stderr"  # a file, not a pipe: the cycle's INFO lines would fill a pipe
            proc = start(cli, "daemon" if round_ % 2 else "run-once", "--date", DAY, stderr=errors.open("w"))
            try:
                wait_for(lambda: len(smtp.received) >= 20 or proc.poll() is not None, timeout=60)
                returned: list[tuple[str, str, int]] = []  # (action, account, log length when it returned)
                for action in ("pay", "hold", "opt-out"):
                    reached = max((IDS.index(r.split("@")[1].split(".")[0]) for m in smtp.received for r in m.rcpt_tos),
                                  default=0)
                    candidates = [a for a in IDS[reached + 5:reached + 90]
                                  if action != "opt-out" or int(a[1:]) % 2 == 0]
                    if not candidates:
                        break
                    acc = rng.choice(candidates)
                    if action == "pay":
                        cli("pay", f"2026-11-{acc}", "--date", DAY)
                    elif action == "hold":
                        cli("hold", acc, "--by", "Ana", "--reason", "negotiating", "--until", "2026-12-10",
                            "--date", DAY)
                    else:
                        cli("opt-out", acc, "--channel", "whatsapp", "--by", "Ana", "--date", DAY)
                    returned.append((action, acc, _log_length(work)))
                    fired += 1
                if round_ % 2:  # the daemon: stop it once its day is done
                    wait_for(lambda: any(b'"heartbeat"' in _bytes(p) for p in work.glob("state.json*")), timeout=60)
                    proc.terminate()
                assert proc.wait(timeout=120) == 0, errors.read_text()[-2000:]
            finally:
                proc.kill()
            recs = records(work)
            received = {m.message["X-Notifier-Attempt-Id"] for m in smtp.received}
        for action, acc, length in returned:
            late = [r for r in recs if r["event"] == "sending" and r["seq"] > length and _stops(action, acc, r)]
            breaches += [(round_, action, acc, r["channel"], r["id"] in received) for r in late]
    assert fired >= ROUNDS * 2, "the cycles ended before the staff commands could run"
    assert not breaches, json.dumps(breaches)
