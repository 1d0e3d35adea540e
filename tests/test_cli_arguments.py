"""Whatever is typed on the command line (or left in a NOTIFIER_ variable): a clear error or success, never a traceback, and a state
that only a successful command changes (hypothesis, over every option and argument of every command).

Each example runs the real program in a subprocess, as an operator would, on a copy of the example
state in a folder of its own.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.cli import cli as group
from tests.conftest import ROOT

# Commands that run until they are stopped have nothing to answer a random argument with in time.
LONG_RUNNING = {"daemon", "web"}  # web: the console serves until stopped (tests/test_web.py runs it)
COMMANDS = sorted(name for name in group.commands if name not in LONG_RUNNING)
SIGNS_OF_A_BUG = ("Traceback", "internal error")

# Text an argv can carry: no NUL, no lone surrogate.
random_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
awkward = st.sampled_from(["", " ", "-", "--", "\n", "a\r\nb", "x" * 5000, "ç" * 300, "../..", "/", "."])
ids = st.sampled_from(["padaria-sao-joao", "atelie-flor-de-lis", "2026-11-padaria-sao-joao",
                       "2026-10-atelie-flor-de-lis", "ghost"])
days = st.sampled_from(["2026-11-24", "2026-11-30", "0001-01-01", "9999-12-31", "2026-02-30", "24/11/2026"])
files = st.sampled_from(["state.json", "examples", "examples/billing.json", "examples/invoices.csv",
                         "n.toml", "/dev/null", "missing.json"])


def values_for(param: click.Parameter) -> st.SearchStrategy[str]:
    """Plausible and implausible values for one parameter, by its type."""
    if isinstance(param.type, click.Choice):
        return st.one_of(st.sampled_from(list(param.type.choices)), random_text)
    if param.name == "day":
        return st.one_of(days, random_text)
    if isinstance(param.type, click.Path) or param.name in ("config_path", "state", "env_file"):
        return st.one_of(files, awkward, random_text)
    return st.one_of(ids, awkward, random_text)


def arguments_for(command: click.Command) -> st.SearchStrategy[list[str]]:
    """Some of the command's options (each flag present or not, each valued option with a value),
    its arguments, and some of the group's options before it."""
    def params(p_list):
        return [p for p in p_list if p.name not in ("help", "version")]

    @st.composite
    def build(draw):
        argv: list[str] = []
        for p in params(group.params):
            if draw(st.integers(0, 3)) == 0:
                argv += [p.opts[0], draw(values_for(p))]
        argv.append(command.name)
        for p in params(command.params):
            if isinstance(p, click.Argument):
                argv.append(draw(values_for(p)))
            elif getattr(p, "is_flag", False):
                argv += [p.opts[0]] if draw(st.booleans()) else []
            elif draw(st.booleans()):
                argv += [p.opts[0], draw(values_for(p))]
        return argv

    return build()


def environment_for(command: click.Command) -> st.SearchStrategy[dict[str, str]]:
    """Some of the NOTIFIER_ variables that stand for the options of the group and the command."""
    options = [p for p in (*group.params, *command.params) if isinstance(p, click.Option) and p.envvar]
    return st.fixed_dictionaries({}, optional={p.envvar: values_for(p) for p in options})


@pytest.fixture(scope="module")
def workspace():
    """A folder with the example state, the example billing data and a config of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(ROOT / "state.json.example", work / "state.json")
        shutil.copytree(ROOT / "examples", work / "examples")
        shutil.copy(ROOT / "notifier.example.toml", work / "n.toml")
        yield work


@pytest.mark.parametrize("name", COMMANDS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_arguments_give_a_clear_answer_and_a_rejection_changes_nothing(workspace, name, data):
    argv = data.draw(arguments_for(group.commands[name]), label="argv")
    variables = data.draw(environment_for(group.commands[name]), label="environment")
    state = workspace / "state.json"
    before = state.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "TWILIO_", "STAFF_", "NOTIFIER_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *argv], cwd=workspace, capture_output=True,
                          text=True, errors="replace", timeout=60, env={**env, **variables, "PYTHONPATH": str(ROOT)})
    for sign in SIGNS_OF_A_BUG:
        assert sign not in proc.stderr, proc.stderr
    if proc.returncode != 0:
        assert proc.stderr.strip(), "a refusal says why"
        assert state.read_bytes() == before
    state.write_bytes(before)  # the next example starts from the example state again
