"""Operator mistakes refused, not recorded for good (issue 18, points 10-12 and small things).

Real processes (`python run.py`), real files; a full disk made real by a tmpfs in a mount
namespace (tests/test_faults_disk.py).
"""
from __future__ import annotations

import pytest

from tests.cycle_helpers import account, setup
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
