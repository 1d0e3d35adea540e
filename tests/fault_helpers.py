"""What the fault tests share: a process started in the background, waiting for a condition, and
the checks every fault must leave true (nothing received twice, every claim answered once, every
`sent` received, every `unknown` a staff task, the log's chain verifies)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from notifier.log.attempts import AttemptLog
from notifier.staff.actions import tasks
from tests.conftest import ROOT


def start(cli, *args: str, **popen) -> subprocess.Popen:
    """`python run.py ARGS` in the background, in the cli's folder with its environment."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=cli.workdir, env=cli.env,
                            text=True, **popen)


def wait_for(condition, timeout: float = 30.0, every: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(every)


def log_records(workdir: Path) -> list[dict]:
    return list(AttemptLog(workdir / "attempts.jsonl").records())


def check_log_against_servers(workdir: Path, smtp=None, twilio=None) -> dict:
    """The invariants of the attempt log against what the servers received, whatever happened:
    - nobody received the same message twice;
    - every claim (`sending`) has exactly one outcome, and no notice was claimed twice;
    - every `sent` e-mail is one the server received (by our attempt id), every `sent` WhatsApp/SMS
      one Twilio accepted (by its SIDs);
    - everything a server received has its claim in the log, and the claim's outcome is `sent`,
      `unknown` when the process died before the answer was written, or a failure that says the
      message may have gone (the connection was lost after the data was handed over);
    - every `unknown` is an open staff task.
    Returns the claims by outcome, for the caller's own checks."""
    recs = log_records(workdir)
    claims = {r["id"]: r for r in recs if r["event"] == "sending"}
    answers = [r for r in recs if r.get("ref") in claims and r["event"] in ("sent", "outbox", "failed", "task",
                                                                            "blocked", "unknown")]
    per_claim = Counter(r["ref"] for r in answers)
    assert set(per_claim) == set(claims) and set(per_claim.values()) <= {1}, "a claim without exactly one outcome"
    outcome = {r["ref"]: r for r in answers}
    # Temporary failures are claimed again; what reached (or may have reached) the customer never is.
    # (A staff escalation sends its stage again on purpose: the actor is part of the notice.)
    reached = Counter((c["channel"], c["recipient"], c.get("stage"), c.get("actor")) for a, c in claims.items()
                      if outcome[a]["event"] in ("sent", "unknown") and c["channel"] != "staff")  # alerts to staff: many
    assert max(reached.values(), default=1) == 1, "a notice sent twice"
    by_event: dict[str, list[dict]] = {}
    for attempt_id, claim in claims.items():
        by_event.setdefault(outcome[attempt_id]["event"], []).append(claim)
    if smtp is not None:
        ids = [m.message["X-Notifier-Attempt-Id"] for m in smtp.received]
        # The same notice twice: one recipient, one stage, the same sender (a staff escalation is
        # the notice again on purpose, with its own actor).
        got = Counter((r, claims.get(a, {}).get("stage"), claims.get(a, {}).get("actor"))
                      for m, a in zip(smtp.received, ids) for r in m.rcpt_tos)
        assert max(got.values(), default=1) == 1, "an e-mail received twice"
        ids = set(ids)
        sent = {a for a, o in outcome.items() if o["event"] == "sent" and claims[a]["channel"] == "email"}
        assert sent <= ids, "a `sent` e-mail the server never received"
        assert ids <= set(claims), "an e-mail received without its claim in the log"
        # ...and its outcome says it went, or may have: `unknown`, or lost after the data was handed over.
        assert all(outcome[a]["event"] in ("sent", "unknown") or outcome[a].get("code") == "lost_during_data"
                   for a in ids)
    if twilio is not None:
        forms = Counter((f["To"], f.get("Body") or f.get("ContentSid")) for f in twilio.forms)
        assert max(forms.values(), default=1) == 1, "a WhatsApp/SMS message received twice"
        sids = {sid for o in outcome.values() if o["event"] == "sent" and o.get("provider") == "twilio"
                for sid in (o.get("provider_id") or "").split(",") if sid}
        assert sids <= set(twilio.messages), "a `sent` message Twilio never accepted"
        # (A WhatsApp claim covers its SMS fallback: same number, same attempt.)
        claimed = {c["recipient"] for c in claims.values() if c["channel"] in ("whatsapp", "sms")}
        for form in twilio.forms:
            assert form["To"].removeprefix("whatsapp:") in claimed, f"{form['To']} got a message with no claim in the log"
    unknown_tasks = [t for t in tasks(recs) if t.kind == "unknown"]
    assert sorted(t.id for t in unknown_tasks) == sorted(o["id"] for o in outcome.values() if o["event"] == "unknown")
    assert all(t.done is None for t in unknown_tasks)
    return by_event


def verify_log_ok(cli) -> None:
    """`notifier verify-log` passes. Run in this process through click's runner (the same command,
    without a second or so of interpreter start-up per check: the fault tests run it often)."""
    from click.testing import CliRunner

    from notifier.cli import cli as group
    env = {k: None for k in os.environ if k.startswith(("NOTIFIER_", "EMAIL_", "TWILIO_", "STAFF_"))}
    env.update({k: v for k, v in cli.env.items() if k.startswith("NOTIFIER_")})
    cwd = os.getcwd()
    os.chdir(cli.workdir)  # relative paths (NOTIFIER_CONFIG, the state) count from the command's folder
    try:
        result = CliRunner().invoke(group, ["verify-log"], env=env)
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0 and "chain and messages: ok" in result.stdout, (result.output, result.exception)
