"""The Pix code of an invoice as a QR code PNG, drawn once and kept.

Drawing one with segno costs about 50 ms (choosing the best of the eight masks, then the PNG
writer) plus 0.1 s to import it, and the same invoice's code goes into several notices over the
days, each from a fresh process of `run-once`. So each PNG is kept in a cache folder beside the
state (`state.json.cache/pix-qr/`), named by the SHA-256 of everything that decides its bytes:
the code, the drawing parameters and segno's version. A cached image is therefore byte for byte
what segno would draw again, and deleting the folder (or any file in it) only costs the time to
draw them again. It sits beside the state, not in the message store (evidence, kept for audits)
nor in a shared temporary folder: whoever can write there could as well edit the Pix codes in the
state itself, and nobody else can slip another QR code into a customer's e-mail.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from contextlib import suppress
from functools import lru_cache
from pathlib import Path

# The Central Bank's manual asks for error correction M; four modules of quiet zone, 6 px a module.
ERROR, SCALE, BORDER = "m", 6, 4
_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


def cache_folder(state: Path) -> Path:
    """`state.json` -> `state.json.cache/pix-qr/`: disposable, beside the state it serves."""
    state = Path(state)
    return state.with_name(state.name + ".cache") / "pix-qr"


def pix_qr_png(code: str, cache: Path | None = None) -> bytes:
    """The Pix code as a QR code PNG a bank app reads off a screen, from `cache` (a folder, see
    `cache_folder`) when it holds it; drawn and stored there otherwise. No cache: drawn."""
    version = _segno_version()
    if cache is None or version is None:
        return _draw(code)
    key = hashlib.sha256(f"segno {version}|error={ERROR}|scale={SCALE}|border={BORDER}|{code}".encode()).hexdigest()
    return _cached(code, Path(cache) / f"{key}.png")


@lru_cache(maxsize=256)
def _cached(code: str, path: Path) -> bytes:
    try:
        data = path.read_bytes()
        if data.startswith(_PNG_START) and data.endswith(_PNG_END):  # a whole file, not a damaged one
            return data
    except OSError:
        pass
    data = _draw(code)
    _store(path, data)
    return data


@lru_cache(maxsize=256)
def _draw(code: str) -> bytes:
    import segno  # 0.1 s with the urllib and xml.sax it imports: only when an image is drawn
    buffer = io.BytesIO()
    segno.make(code, error=ERROR, micro=False).save(buffer, kind="png", scale=SCALE, border=BORDER)
    return buffer.getvalue()


def _store(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename, so a reader (another process
    drawing the same code) sees the whole file or none. A cache that cannot be written is no
    error: the image is sent all the same."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


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
