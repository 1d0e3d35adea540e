"""Operator mistakes refused, not recorded for good (issue 18, points 10-12 and small things).

Real processes (`python run.py`), real files; a full disk made real by a tmpfs in a mount
namespace (tests/test_faults_disk.py).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.cycle_helpers import CONFIG, account, setup
from tests.fault_helpers import log_records, start, wait_for
from tests.fake_twilio import fake_twilio  # noqa: F401 - a fixture
from tests.test_faults_disk import in_namespace


@pytest.fixture
def cycled(cli):
    """Forty accounts imported, the reminders of 17/11 written to the outbox."""
    setup(cli, [account(f"c{i:02}") for i in range(40)])
    cli("run-once", "--date", "2026-11-17")
    return cli


# --- attempts --since/--until --------------------------------------------------------------------

@pytest.mark.parametrize("order", [("--since", "2026-12-31", "--until", "2026-01-01"),
                                   ("--until", "2026-01-01", "--since", "2026-12-31")])
def test_a_since_after_until_is_an_error_not_an_empty_listing(cycled, order):
    proc = cycled("attempts", *order, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--since 2026-12-31 is after --until 2026-01-01" in proc.stderr and "Traceback" not in proc.stderr
    # The same day on both sides is one day, not an error.
    assert "c00" in cycled("attempts", "--since", "2026-11-17", "--until", "2026-11-17").stdout


# --- a full disk under attempts --output ---------------------------------------------------------

def test_a_full_disk_during_attempts_output_is_one_clear_error_and_leaves_no_part(cycled):
    out = cycled.workdir / "out"
    out.mkdir()
    whole = cycled("attempts", "--format", "csv").stdout
    assert len(whole.encode()) > 3 * 4096  # more than the blocks the full disk has left
    proc = in_namespace(cycled, out, "full", "attempts", "--format", "csv", "--output", "out/attempts.csv", free_kib=4)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == "Error: out/attempts.csv: cannot write: No space left on device\n"
    assert not (cycled.workdir / "out.after" / "attempts.csv").exists()


# --- check lists every WhatsApp template a stage or `escalate` needs ------------------------------

def test_check_names_the_suspended_template_an_escalation_needs_and_without_it_the_escalation_is_blocked(cli, fake_twilio):
    sid = "HX" + "a" * 32
    templates = "".join(f'[channels.whatsapp.templates.{stage}]\ncontent_sid = "{sid}"\n'
                        for stage in ("reminder", "due_today", "overdue", "suspension_warning", "deletion_warning"))
    setup(cli, [account("acme", whatsapp="+5511987654321")], config=templates)
    cli.env.update(fake_twilio.env(TUTORIAL_URL="https://lucanet.com.br/tutorial"))
    check = cli("check", check=False)
    said = [line for line in (check.stdout + check.stderr).splitlines() if "channels.whatsapp.templates." in line]
    assert len(said) == 1 and said[0].startswith("  warning: whatsapp: channels.whatsapp.templates.suspended: "), said
    assert "escalate --channel whatsapp" in said[0]
    # 30/11/2026, the suspension date: an escalation sends the `suspended` stage, which has no template.
    out = cli("escalate", "acme", "--by", "ana", "--channel", "whatsapp", "--now", "--date", "2026-11-30", check=False)
    assert "blocked (config:whatsapp.templates.suspended " in out.stdout and fake_twilio.forms == []


# --- point 10: run-once/daemon --date within a sane window, unless a rehearsal copy --------------

def _snapshot(workdir):
    """Every file under `workdir` with its bytes: to show that a refused command wrote nothing."""
    return {p: p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", ["run-once", "daemon"])
@pytest.mark.parametrize("day, why", [("2062-11-24", "more than 7 days after today"),
                                      ("2026-11-10", "before the last cycle's day on this state (2026-11-17)")])
def test_a_date_outside_the_sane_window_is_refused_and_nothing_is_written(cycled, command, day, why):
    before = _snapshot(cycled.workdir)
    proc = cycled(command, "--date", day, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith(f"Error: --date {day}: {why}") and "--rehearsal" in proc.stderr
    assert "Traceback" not in proc.stderr and _snapshot(cycled.workdir) == before


def test_a_rehearsal_copy_replays_any_day_and_refuses_a_live_channel(cycled):
    # A day before the last cycle's, and one two years ahead, on the copy: accepted.
    cycled("run-once", "--rehearsal", "--date", "2026-11-10")
    far = cycled.json("run-once", "--rehearsal", "--date", "2028-11-24")
    assert far["day"] == "2028-11-24"
    # A rehearsal never reaches anybody: a provider configured is refused, nothing written.
    before = _snapshot(cycled.workdir)
    proc = cycled("run-once", "--rehearsal", "--date", "2028-11-25", check=False,
                  env={"STAFF_URLS": "json://127.0.0.1:9/staff"})
    assert proc.returncode == 1 and proc.stderr.startswith("Error: --rehearsal: ") and "staff: json://127.0.0.1:9/staff" in proc.stderr
    assert _snapshot(cycled.workdir) == before
    # The copy's last cycle is now 2028's: without --rehearsal, the real days are refused on it.
    assert "before the last cycle's day on this state (2028-11-24)" in cycled("run-once", "--date", "2026-11-18",
                                                                             check=False).stderr


# --- point 11: a typo never turns sending into a local folder unnoticed --------------------------

def test_a_typo_in_env_is_a_warning_naming_the_variable_meant(cycled):
    (cycled.workdir / ".env").write_text("EMAIL_ULR=smtp://mail.lucanet.com.br\nDATABASE_URL=x\nNOTIFIER_STATE=other.json\n",
                                         encoding="utf-8")
    proc = cycled("status", check=False)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: .env: EMAIL_ULR is not a variable the notifier reads; did you mean EMAIL_URL?",
                        "warning: .env: NOTIFIER_STATE is not read from an env file (it would change nothing); set it "
                        "in the environment of the process (the systemd unit, docker -e, the shell) or use the option"]


def test_status_and_the_daemons_start_say_per_channel_live_or_outbox(cycled, fake_twilio):
    env = fake_twilio.env()
    lines = cycled("status", env=env, check=False).stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("channels:"))
    shown = [line.split(":", 1)[1].strip() if n == 0 else line.strip() for n, line in enumerate(lines[at:at + 5])]
    assert [s.split(": ")[:2] for s in shown] == [["email", "outbox"], ["whatsapp", "live"], ["sms", "live"],
                                                  ["social", "outbox"], ["staff", "outbox"]]
    assert "EMAIL_URL is not set" in shown[0]
    assert json.loads(cycled("status", "--json", env=env, check=False).stdout)["channels"] == {"email": "outbox", "whatsapp": "live", "sms": "live",
                                                         "social": "outbox", "staff": "outbox"}
    daemon = start(cycled, "daemon", "--date", "2026-11-18")
    try:
        wait_for(lambda: any(r["event"] == "sending" and r["time"] > "2026-11-18" for r in log_records(cycled.workdir)),
                 timeout=60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        err = daemon.communicate(timeout=60)[1]
    [line] = [line for line in err.splitlines() if "notifier.daemon: channels: " in line]
    assert "email outbox: outbox/email (EMAIL_URL is not set); whatsapp outbox: " in line and "staff outbox: " in line


def test_an_outbox_write_is_outbox_never_sent_in_the_log_summary_csv_and_audit(cycled, tmp_path):
    events = [r["event"] for r in log_records(cycled.workdir) if r["event"] not in ("sending",)]
    assert events and set(events) == {"outbox"}
    summary = cycled("run-once", "--date", "2026-11-18").stdout  # nothing new: the header is enough
    assert summary.splitlines()[0].split()[:3] in (["channel", "sent", "outbox"], ["nothing", "to", "send"])
    csv_rows = cycled("attempts", "--format", "csv").stdout.splitlines()[1:]
    assert csv_rows and all(";gravado na caixa de saída local;" in row and ";enviado;" not in row for row in csv_rows)
    html = tmp_path / "audit.html"
    cycled("audit", "c00", "--html", str(html))
    page = html.read_text(encoding="utf-8")
    assert "gravado na caixa de saída local" in page and ">enviado<" not in page


def test_live_true_stops_run_once_and_the_daemon_at_start_when_a_channel_has_no_provider(cycled):
    (cycled.workdir / "notifier.toml").write_text("live = true\n" + CONFIG, encoding="utf-8")
    before = _snapshot(cycled.workdir)
    for command in ("run-once", "daemon"):
        proc = cycled(command, "--date", "2026-11-18", check=False, env={"EMAIL_ULR": "smtp://mail.lucanet.com.br"})
        [line] = proc.stderr.splitlines()
        assert proc.returncode == 1 and line.startswith("Error: notifier.toml: live = true, but not every channel has its provider: ")
        assert "email: outbox/email (EMAIL_URL is not set)" in line and "staff: " in line
    assert _snapshot(cycled.workdir) == before


# --- point 12: --env-file larger than 1 MB ---------------------------------------------------------

def test_an_env_file_over_1_mb_is_refused_without_reading_it_all(cli):
    big = cli.workdir / "big.env"
    big.write_bytes(b"# " + b"x" * (1024 * 1024 - 3) + b"\n" + b"A=b\n")  # 1 MB + 4 bytes of valid lines
    for path in (str(big), "/dev/urandom"):  # /dev/urandom never ends: read whole, it would never return
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--env-file", path, "import", "x.json"],
                              cwd=cli.workdir, env=cli.env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and proc.stderr == f"Error: {path}: larger than 1 MB, not an env file (a .env file holds NAME=value lines)\n"
    assert sorted(p.name for p in cli.workdir.iterdir()) == ["big.env"]
    big.write_bytes(b"# " + b"x" * (1024 * 1024 - 7) + b"\n" + b"A=b\n")  # exactly 1 MB: read
    assert cli("--env-file", str(big), "check", check=False).stderr.count("larger than 1 MB") == 0
