"""The Pix code of an invoice as a QR code PNG, drawn once and kept.

Drawing one with segno costs about 50 ms (choosing the best of the eight masks, then the PNG
writer) plus 0.1 s to import it, and the same invoice's code goes into several notices over the
days, each from a fresh process of `run-once`. So each PNG is kept in the cache beside the state
(notifier/state/caches.py: `state.json.cache/pix-qr/`), named by the SHA-256 of everything that decides
its bytes: the code, the drawing parameters and segno's version. A cached image is therefore byte
for byte what segno would draw again. Why there and not elsewhere: see notifier/state/caches.py.
"""
from __future__ import annotations

import hashlib
import io
import re
from functools import lru_cache
from pathlib import Path

from notifier.state import caches

# The Central Bank's manual asks for error correction M; four modules of quiet zone, 6 px a module.
ERROR, SCALE, BORDER = "m", 6, 4
_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def pix_qr_png(code: str, cache: Path | None = None) -> bytes:
    """The Pix code as a QR code PNG a bank app reads off a screen, from `cache` (a folder, see
    `caches.folder("pix-qr")`) when it holds it; drawn and stored there otherwise. No cache: drawn."""
    version = _segno_version()
    if cache is None or version is None:
        return _draw(code)
    key = hashlib.sha256(f"segno {version}|error={ERROR}|scale={SCALE}|border={BORDER}|{code}".encode()).hexdigest()
    return _cached(code, Path(cache) / f"{key}.png")


@lru_cache(maxsize=256)
def _cached(code: str, path: Path) -> bytes:
    data = caches.read(path)
    if data is not None and data.startswith(_PNG_START) and data.endswith(_PNG_END):  # whole, not damaged
        return data
    data = _draw(code)
    caches.write(path, data)
    return data


@lru_cache(maxsize=256)
def _draw(code: str) -> bytes:
    import segno  # 0.1 s with the urllib and xml.sax it imports: only when an image is drawn
    buffer = io.BytesIO()
    segno.make(code, error=ERROR, micro=False).save(buffer, kind="png", scale=SCALE, border=BORDER)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _segno_version() -> str | None:
    """segno's version, read from its `__init__.py` without importing it (the import is what the
    cache saves); None when it cannot be found, and then nothing is cached."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("segno")
        with open(spec.origin, encoding="utf-8") as f:
            head = f.read(4096)
    except (AttributeError, ImportError, OSError, TypeError, ValueError):
        return None
    found = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", head, re.M)
    return found.group(1) if found else None
