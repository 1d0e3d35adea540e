"""A real install: the wheel that `pip install .` builds, in a fresh virtual environment, can send.

Offline: the build uses the setuptools already installed (--no-build-isolation), and the venv sees
the dependencies of the interpreter running the tests, so nothing is downloaded.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "outbox", "__pycache__", ".hypothesis",
                                    ".pytest_cache", "state.json", "attempts.jsonl", "*.lock", "*.tmp")


def run(*args, cwd: Path, env: dict) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_the_installed_wheel_sends_an_email_to_the_outbox(tmp_path):
    # Nothing of the checkout on the path: only what the wheel installed may be used.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith(("EMAIL_", "TWILIO_",
                                                                                          "STAFF_", "NOTIFIER_"))}
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
        "--wheel-dir", tmp_path / "dist", source, cwd=tmp_path, env=env)
    wheel, = (tmp_path / "dist").glob("dunning_notifier-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    python, notifier = venv / "bin" / "python", venv / "bin" / "notifier"
    _see_our_dependencies(python)
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", wheel,
        cwd=tmp_path, env=env)

    elsewhere = tmp_path / "srv"
    elsewhere.mkdir()
    # Every module from the venv: a package the wheel forgot would otherwise be found through an
    # editable install of the system's site-packages and the test would pass for the wrong reason.
    located = run(python, "-c", "import sys, notifier.cli, notifier.run.render, notifier.channels.email; print('\\n'.join("
                  "m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'notifier'))",
                  cwd=elsewhere, env=env)
    assert all(Path(line).is_relative_to(venv) for line in located.split()), located
    run(notifier, "import", ROOT / "examples" / "billing.json", "--date", "2026-11-26", cwd=elsewhere, env=env)
    sent = run(notifier, "send", "padaria-sao-joao", "--channel", "email", "--stage", "overdue", "--date", "2026-11-24",
               cwd=elsewhere, env=env)
    assert "not sent, written to the local outbox" in sent
    emls = list((elsewhere / "outbox" / "email").glob("*.eml"))
    assert emls and "Padaria S" in emls[0].read_text(encoding="utf-8")


def _see_our_dependencies(python: Path) -> None:
    """Let the venv of `python` import the dependencies the tests run with, wherever they were
    installed: the system's site-packages (a machine-wide install) or the tests' own venv (a fresh
    checkout, where `--system-site-packages` alone finds no msgspec). Plain paths in a .pth file,
    after the venv's own site-packages: the wheel's notifier comes first, and the .pth files of
    those folders (an editable install of the checkout) are not run."""
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    (Path(own) / "test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
