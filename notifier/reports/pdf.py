"""HTML to PDF with the system's headless Chromium (`--print-to-pdf`).

Chromium, not WeasyPrint: it is one system package (`apt install chromium`) with no Python
dependency, and the PDF is exactly what finance saw in the browser, A4 print CSS included. The
flags keep it quiet and local: no sandbox (it runs as a service user, often in a container), no
GPU, no background network, and a fresh profile per run in a temporary folder.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 120


class PdfError(Exception):
    """No browser to print with, or it failed; the message says what to install or look at."""


def find_browser() -> str:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise PdfError("no headless Chromium found for --pdf (install the `chromium` package; the HTML report "
                   "needs nothing)")


def headless(browser: str, profile: str) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}"]


def html_to_pdf(html_file: Path, pdf_file: Path) -> None:
    browser = find_browser()
    with tempfile.TemporaryDirectory(prefix="notifier-chromium-") as profile:
        command = headless(browser, profile) + ["--no-pdf-header-footer", f"--print-to-pdf={Path(pdf_file).resolve()}",
                                                Path(html_file).resolve().as_uri()]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PdfError(f"{browser} did not finish printing {html_file} within {TIMEOUT} s") from None
    if proc.returncode != 0 or not Path(pdf_file).exists() or Path(pdf_file).stat().st_size == 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        raise PdfError(f"{browser} could not print {html_file} to PDF (exit {proc.returncode}): " + " | ".join(tail))
