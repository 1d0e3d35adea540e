"""The deployment files, checked without a container engine or a running systemd (CI has neither).

What needs an engine, building and running the image, is `tools/check-image` (by hand, README).
Here: the Dockerfile's commands are real notifier commands, `.dockerignore` keeps what `pip
install .` needs and drops secrets and state, and the systemd unit passes `systemd-analyze verify`
(systemd ships on this project's machines) with no warning.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from tests.conftest import ROOT

UNIT = ROOT / "deploy" / "notifier.service"
WEBHOOKS_UNIT = ROOT / "deploy" / "notifier-webhooks.service"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and not line.startswith("#")]


def instruction(name: str) -> str:
    found = [args for ins, args in dockerfile() if ins == name]
    assert len(found) == 1, f"Dockerfile: expected one {name}, found {found}"
    return found[0]


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) command: the form in which the notifier gets the signals itself."""
    command = json.loads(args)
    assert isinstance(command, list) and all(isinstance(a, str) for a in command), args
    return command


def run_help(cli, args: list[str]) -> None:
    """`notifier ARGS --help` exits 0: every word of ARGS is an option or command the CLI knows."""
    assert args[0] == "notifier", args
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "notifier" in scripts, "pyproject.toml installs no `notifier` command"
    cli(*args[1:], "--help")


def test_the_images_commands_are_real_notifier_commands(cli):
    healthcheck = instruction("HEALTHCHECK")
    assert healthcheck.split(" CMD ")[0].split() == ["--interval=15m", "--timeout=60s", "--start-period=10m"]
    run_help(cli, exec_form(healthcheck.split(" CMD ", 1)[1]))
    run_help(cli, exec_form(instruction("CMD")))
    # The entrypoint (tini, so that a SIGTERM during start-up is not lost) is installed by the Dockerfile.
    entrypoint = exec_form(instruction("ENTRYPOINT"))
    assert any(entrypoint[0] in args.split() for ins, args in dockerfile() if ins == "RUN" and "apt-get install" in args)
    assert entrypoint[-1] == "--", entrypoint


def test_the_image_runs_as_a_user_with_its_state_in_the_volume():
    assert instruction("USER") not in ("root", "0")
    env = dict(pair.split("=", 1) for ins, args in dockerfile() if ins == "ENV" for pair in args.split())
    assert env["PYTHONUNBUFFERED"] == "1"  # every log line reaches `docker logs` when it is written
    state = PurePosixPath(env["NOTIFIER_STATE"])
    assert json.loads(instruction("VOLUME")) == [str(state.parent)]
    assert [a for i, a in dockerfile() if i == "WORKDIR"][-1] == str(state.parent)  # relative paths resolve there
    assert instruction("STOPSIGNAL") == "SIGTERM"
    copies = [args.split() for ins, args in dockerfile() if ins in ("COPY", "ADD")]
    for *sources, _target in copies:
        for source in sources:
            assert not source.startswith("--") and (ROOT / source).exists(), f"COPY {source}: not in the repository"


def dockerignore() -> list[tuple[bool, re.Pattern]]:
    """The patterns of .dockerignore as Docker reads them (moby/patternmatcher): relative to the
    context's root, `*` and `?` within one path segment, `**` any number of segments, `!` re-includes,
    the last matching line wins, and a pattern that matches a folder matches what is inside it."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = str(PurePosixPath(line.lstrip("!"))).lstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        patterns.append((negated, re.compile(regex + r"\Z")))
    return patterns


def ignored(path: str, patterns) -> bool:
    parts = path.split("/")
    result = False
    for negated, regex in patterns:
        if any(regex.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            result = not negated
    return result


def test_dockerignore_keeps_the_package_and_drops_secrets_and_state():
    patterns = dockerignore()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = project["tool"]["setuptools"]["packages"]
    needed = [p for p in tracked if p.split("/")[0] in packages or p in ("pyproject.toml", project["project"]["readme"])]
    assert any(p.startswith("message_templates/") for p in needed)
    assert [p for p in needed if ignored(p, patterns)] == []
    kept_out = [".env", "state.json", "state.json.pid", "attempts.jsonl", "attempts.jsonl.messages/2026-11.pack",
                "outbox/email/a.eml", "notifier/__pycache__/cli.cpython-311.pyc", "dunning_notifier.egg-info/PKG-INFO",
                "build/lib/notifier/cli/base.py", ".git/config"]
    assert [p for p in kept_out if not ignored(p, patterns)] == []


def unit(path: Path = UNIT) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize("path", [UNIT, WEBHOOKS_UNIT], ids=lambda p: p.name)
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path, path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze not found (Debian: apt-get install systemd)"
    # verify checks that ExecStart's program exists: point it at this machine's notifier command.
    program = unit(path)["ExecStart"][0].split()[0]
    here = tmp_path / "notifier"
    here.write_text("#!/bin/sh\n")
    here.chmod(0o755)
    copy = tmp_path / path.name
    copy.write_text(path.read_text(encoding="utf-8").replace(program, str(here)), encoding="utf-8")
    proc = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # Lines about our unit only: a host's own broken units are not this file's problem.
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if path.name in line]
    assert proc.returncode == 0 and ours == [], proc.stdout + proc.stderr


@pytest.mark.parametrize("path", [UNIT, WEBHOOKS_UNIT], ids=lambda p: p.name)
def test_a_units_documentation_is_a_file_its_install_steps_put_there(path):
    steps = UNIT.read_text(encoding="utf-8")  # the install steps, at the top of the daemon's unit
    for doc in unit(path)["Documentation"]:
        installed = doc.removeprefix("file://")
        step = re.search(rf"^#.* install .* /path/to/the/clone/(\S+) {re.escape(installed)}( |$)", steps, re.M)
        assert doc.startswith("file:///") and step and (ROOT / step[1]).is_file(), doc


def test_the_webhooks_unit_serves_them_as_the_daemons_user_beside_its_state(cli, tmp_path):
    daemon, webhooks = unit(), unit(WEBHOOKS_UNIT)
    for key in ("User", "Group", "StateDirectory", "WorkingDirectory", "Environment", "ReadWritePaths"):
        assert webhooks[key] == daemon[key], key
    program, *args = webhooks["ExecStart"][0].split()
    assert program == daemon["ExecStart"][0].split()[0] and "serve-webhooks" in args
    assert args[args.index("--listen") + 1].startswith("127.0.0.1:")  # behind the HTTPS reverse proxy
    env_file = tmp_path / ".env"
    env_file.write_text("")
    run_help(cli, ["notifier", *[str(env_file) if a.endswith("/.env") else a for a in args]])


def test_the_systemd_unit_runs_the_daemon_as_its_user_in_its_state_directory(cli, tmp_path):
    u = unit()
    assert u["Restart"] == ["on-failure"] and u["User"][0] not in ("root", "0") and u["Type"] == ["simple"]
    state_dir = "/var/lib/" + u["StateDirectory"][0]
    assert u["WorkingDirectory"] == [state_dir]
    env = dict(e.split("=", 1) for e in u["Environment"])
    assert PurePosixPath(env["NOTIFIER_STATE"]).parent == PurePosixPath(state_dir)
    assert state_dir in u["ReadWritePaths"][0].split()  # ProtectSystem=strict: the rest is read-only
    program, *args = u["ExecStart"][0].split()
    assert Path(program).name == "notifier" and args[-1] == "daemon"
    # The same options in front of `daemon` are accepted by the real command line.
    env_file = tmp_path / ".env"
    env_file.write_text("")
    run_help(cli, ["notifier", *[str(env_file) if a.endswith("/.env") else a for a in args]])


def run_once_log(cli, journal_stream: str | None, folder: Path, *options: str) -> list[str]:
    """The lines `run-once` writes to stderr on a fresh copy of the example state in `folder`, its
    stderr a file (the journal's stream is a socket systemd hands us, named by
    JOURNAL_STREAM=device:inode): its log lines, or with `options` that it refuses, its error."""
    folder.mkdir()
    shutil.copy(ROOT / "state.json.example", folder / "state.json")
    stderr_path = folder / "stderr"
    env = dict(cli.env)
    env.pop("JOURNAL_STREAM", None)
    with open(stderr_path, "w+b") as err:
        if journal_stream is not None:
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = journal_stream.format(dev=st.st_dev, ino=st.st_ino)
        done = subprocess.run([sys.executable, str(ROOT / "run.py"), *options, "run-once", "--date", "2026-11-24"],
                              cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=err, timeout=120)
    lines = stderr_path.read_text(encoding="utf-8").splitlines()
    if options:
        assert done.returncode != 0, lines
        return lines
    assert done.returncode == 0, lines
    return [line for line in lines if "notifier.cycle" in line]


def test_under_systemd_a_log_line_starts_with_its_priority_for_journald(cli, tmp_path):
    lines = run_once_log(cli, "{dev}:{ino}", tmp_path / "journal")
    assert lines and all(re.match(r"<6>notifier\.cycle: \S", line) for line in lines), lines


def test_under_systemd_a_refused_command_says_why_at_the_err_priority(cli, tmp_path):
    # journald files a line without a prefix as info: `journalctl -p err` would not show why the
    # daemon failed to start (here: a config file that does not exist).
    lines = run_once_log(cli, "{dev}:{ino}", tmp_path / "journal", "--config", "nao-existe.toml")
    assert lines and all(line.startswith("<3>") for line in lines), lines
    assert any("nao-existe.toml" in line for line in lines), lines
    # The same error elsewhere is the plain `Error: ...` of any command line.
    [line] = run_once_log(cli, None, tmp_path / "terminal", "--config", "nao-existe.toml")
    assert line.startswith("Error: ") and "nao-existe.toml" in line


def test_elsewhere_a_log_line_starts_with_its_time(cli, tmp_path):
    # A JOURNAL_STREAM inherited by a process whose stderr went elsewhere is not the journal.
    for n, stream in enumerate((None, "{dev}:{ino}1", "not-a-stream")):
        lines = run_once_log(cli, stream, tmp_path / str(n))
        assert lines and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} INFO notifier\.cycle: ", line)
                             for line in lines), (stream, lines)
