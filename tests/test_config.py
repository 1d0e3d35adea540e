"""Configuration: the example file is the defaults, and every bad value names its key."""
from __future__ import annotations

from pathlib import Path

import pytest

from notifier.config import DEFAULT_LADDER, Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_example_file_states_the_built_in_defaults():
    cfg = load_config(ROOT / "notifier.example.toml", {})
    defaults = Config()
    assert cfg.ladder == DEFAULT_LADDER
    for key in ("settlement_days", "extra_holidays", "contact_hours", "timezone", "retention_months", "company"):
        assert getattr(cfg, key) == getattr(defaults, key), key
    for key in ("state", "attempt_log", "outbox"):  # the same names, counted from the file's folder
        assert getattr(cfg, key) == ROOT / getattr(defaults, key), key


def test_secrets_come_from_the_environment_only():
    cfg = load_config(None, {"EMAIL_URL": "smtp://localhost:25/?from=a@b.com", "HOME": "/root"})
    assert cfg.env == {"EMAIL_URL": "smtp://localhost:25/?from=a@b.com"}


@pytest.mark.parametrize("text,key", [
    ('[[ladder]]\nstage = "reminderr"\nchannels = ["email"]', "ladder[0].stage"),
    ('[[ladder]]\nstage = "reminder"\noffset_days = 3\nchannels = ["email"]', "ladder[0].offset_days"),
    ('[[ladder]]\nstage = "overdue"\nchannels = ["fax"]', "ladder[0].channels"),
    ('[[ladder]]\nstage = "overdue"\nchannels = []', "ladder[0].channels"),
    ('[[ladder]]\nstage = "overdue"\nchannels = ["email"]\nfirst_time_channels = ["pigeon"]', "ladder[0].first_time_channels"),
    ('[[ladder]]\nstage = "reminder"\noffset_days = -3\nchannels = ["email"]\nfirst_time_channels = ["whatsapp"]', "ladder[0].first_time_channels"),
    ('[[ladder]]\nstage = "suspended"\nchannels = ["email"]\n[[ladder]]\nstage = "overdue"\nchannels = ["email"]', "ladder"),
    ('[contact_hours]\nweekdays = "8h-20h"', "contact_hours.weekdays"),
    ('[contact_hours]\nsaturday = "14:00-08:00"', "contact_hours.saturday"),
    ('[contact_hours]\nweekdays = "25:00-26:00"', "contact_hours.weekdays"),
    ('settlement_days = -1', "settlement_days"),
    ('[cycle]\nnice = 20', "cycle.nice"),
    ('timezone = "Mars/Olympus"', "timezone"),
    ('extra_holidays = ["2026-02-30"]', "extra_holidays[0]"),
    ('[company]\ncnpj = ""', "company.cnpj"),
    ('colour = "blue"', "colour"),
    ('[channels.fax]\nx = 1', "channels.fax"),
    ('[company]\nlegal_name = "Lucanet Ltda\\r\\nBcc: x@y.z"', "company.legal_name"),
    ('[company]\naddress = "Rua A\\u001b]0;title\\u0007"', "company.address"),
    ('[company]\npayment_methods = ["PIX", "boleto\\n"]', "company.payment_methods[1]"),
    ('[company]\npayment_methods = ["PIX", 3]', "company.payment_methods[1]"),
    ('outbox = "out\\u0000box"', "outbox"),
])
def test_invalid_config_is_rejected_naming_the_key(tmp_path, text, key):
    path = tmp_path / "notifier.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(path, {})
    assert str(exc.value).startswith(f"{path}: {key}: ")


def test_not_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("ladder = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, {})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", {})


def test_a_shorter_ladder_and_local_holidays(tmp_path):
    path = tmp_path / "n.toml"
    path.write_text('extra_holidays = ["2026-11-24"]\n[[ladder]]\nstage = "overdue"\nchannels = ["email", "sms"]\n',
                    encoding="utf-8")
    cfg = load_config(path, {})
    assert [s.name for s in cfg.ladder] == ["overdue"] and cfg.ladder[0].channels == ("email", "sms")
    assert str(cfg.extra_holidays[0]) == "2026-11-24"


def test_relative_paths_count_from_the_config_folder_and_unnamed_files_go_beside_the_state(tmp_path):
    path = tmp_path / "etc" / "n.toml"
    path.parent.mkdir()
    path.write_text('state = "../var/state.json"\noutbox = "out"\ntemplates = "/opt/t"\n', encoding="utf-8")
    cfg = load_config(path, {})
    assert cfg.state == tmp_path / "etc" / "../var/state.json"
    assert cfg.outbox == tmp_path / "etc" / "out" and cfg.templates == Path("/opt/t")
    assert cfg.attempt_log == tmp_path / "etc" / "../var/attempts.jsonl"  # not named: beside the state
    given = load_config(path, {}, state=Path("/srv/n/state.json"))
    assert given.state == Path("/srv/n/state.json") and given.attempt_log == Path("/srv/n/attempts.jsonl")
    assert given.outbox == tmp_path / "etc" / "out"


def test_without_a_config_every_file_goes_beside_the_state():
    cfg = load_config(None, {}, state=Path("/srv/n/state.json"))
    assert (cfg.attempt_log, cfg.outbox, cfg.templates) == (Path("/srv/n/attempts.jsonl"), Path("/srv/n/outbox"), None)
    assert load_config(None, {}).attempt_log == Path("attempts.jsonl")  # the current folder, as before


def test_env_file_values_and_unreadable_env_files(tmp_path):
    from notifier.config import read_env_file
    good = tmp_path / "good.env"
    good.write_text("EMAIL_URL=smtp://localhost:25/?from=a@b.com\n# a comment\nEMPTY\n", encoding="utf-8")
    assert read_env_file(good) == {"EMAIL_URL": "smtp://localhost:25/?from=a@b.com"}
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"\xff\xfe\x00EMAIL_URL")
    with pytest.raises(ConfigError, match="binary.env: not a text file"):
        read_env_file(binary)
    with pytest.raises(ConfigError, match="missing.env: env file not found"):
        read_env_file(tmp_path / "missing.env")
    with pytest.raises(ConfigError, match="cannot read the env file"):
        read_env_file(tmp_path)
