"""Render the sample HTML e-mails to PNG in headless Chromium, at 800 and 400 px wide, to look at
them as a desktop and a phone mail app would show them.

    python tools/render_emails.py [OUT_DIR] [--stage overdue] [--account exemplo]

Each sample e-mail (notifier.run.render.sample_cases) is written as OUT_DIR/ACCOUNT.STAGE.html, with
its inline images (the Pix QR codes, `cid:` links a browser cannot follow) turned into data: URIs,
then screenshotted to ACCOUNT.STAGE.800.png and ACCOUNT.STAGE.400.png. Needs `chromium` (the
Debian package) on PATH; nothing here reaches the network.
"""
from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifier.config import Config  # noqa: E402
from notifier.run.render import Renderer, sample_cases  # noqa: E402

WIDTHS = (800, 400)
HEIGHT = 2600  # tall enough for the longest e-mail (the tutorial); the rest stays white
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--hide-scrollbars")


def browser_html(message) -> str:
    """The HTML part with its `cid:` images inlined as data: URIs."""
    html = message.html
    for cid, data, mime in message.images:
        html = html.replace(f"cid:{cid}", f"data:{mime};base64,{base64.b64encode(data).decode()}")
    return html


def screenshot(chromium: str, page: Path, out: Path, width: int) -> None:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                        f"--window-size={width},{HEIGHT}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="email-screenshots", type=Path)
    parser.add_argument("--stage", action="append", help="only this stage (repeatable)")
    parser.add_argument("--account", action="append", help="only this sample account (repeatable)")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(Config())
    for notice, account, invoices, today in sample_cases():
        if notice.channel != "email" or (args.stage and notice.stage not in args.stage) \
                or (args.account and account.id not in args.account):
            continue
        name = f"{account.id}.{notice.stage}"
        page = args.out / f"{name}.html"
        page.write_text(browser_html(renderer.render(notice, account, invoices, today)), encoding="utf-8")
        for width in WIDTHS:
            screenshot(chromium, page, args.out / f"{name}.{width}.png", width)
        print(f"{page} -> {name}.{{{','.join(map(str, WIDTHS))}}}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
