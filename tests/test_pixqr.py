"""The Pix QR images kept beside the state (notifier/billing/pixqr.py): what a cached image sends is byte
for byte what segno draws, and a deleted or damaged cache only costs the time to draw again."""
from __future__ import annotations

import io

import segno

from notifier.state import caches
from notifier.billing import pixqr
from notifier.billing.pixqr import pix_qr_png
from notifier.run.render import SAMPLE_PIX

OTHER_PIX = SAMPLE_PIX.replace("LUCANET", "LUCAMET")


def drawn(code: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(code, error="m", micro=False).save(buffer, kind="png", scale=6, border=4)
    return buffer.getvalue()


def fresh_process() -> None:
    """What a new `run-once` starts with: nothing of the earlier images in memory."""
    pixqr._cached.cache_clear()
    pixqr._draw.cache_clear()


def test_a_cached_image_is_the_one_segno_draws_and_each_code_has_its_own(tmp_path):
    cache = tmp_path / "state.json.cache" / "pix-qr"
    fresh_process()
    first = pix_qr_png(SAMPLE_PIX, cache)
    assert first == drawn(SAMPLE_PIX)
    [stored] = cache.iterdir()
    assert stored.read_bytes() == first
    fresh_process()
    assert pix_qr_png(SAMPLE_PIX, cache) == first  # read back from the file
    assert pix_qr_png(OTHER_PIX, cache) == drawn(OTHER_PIX) != first
    assert len(list(cache.iterdir())) == 2
    assert pix_qr_png(SAMPLE_PIX) == first  # no cache folder: drawn


def test_a_file_in_the_cache_is_what_is_sent(tmp_path):
    # Proves the cache is read (and not drawn again), which the byte-for-byte tests cannot tell.
    cache = tmp_path / "state.json.cache" / "pix-qr"
    fresh_process()
    pix_qr_png(SAMPLE_PIX, cache)
    [stored] = cache.iterdir()
    other = drawn(OTHER_PIX)
    stored.write_bytes(other)
    fresh_process()
    assert pix_qr_png(SAMPLE_PIX, cache) == other


def test_a_deleted_or_damaged_cache_draws_the_image_again(tmp_path):
    cache = tmp_path / "state.json.cache" / "pix-qr"
    fresh_process()
    image = pix_qr_png(SAMPLE_PIX, cache)
    [stored] = cache.iterdir()
    stored.write_bytes(image[: len(image) // 2])  # torn by a full disk, say
    fresh_process()
    assert pix_qr_png(SAMPLE_PIX, cache) == image
    assert stored.read_bytes() == image  # repaired
    for path in (stored, cache):
        path.unlink() if path.is_file() else path.rmdir()
    fresh_process()
    assert pix_qr_png(SAMPLE_PIX, cache) == image


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path):
    blocker = tmp_path / "state.json.cache"
    blocker.write_text("a file where the folder would go")
    fresh_process()
    assert pix_qr_png(SAMPLE_PIX, tmp_path / "state.json.cache" / "pix-qr") == drawn(SAMPLE_PIX)
    assert blocker.read_text() == "a file where the folder would go"


def test_another_segno_version_is_another_file(tmp_path, monkeypatch):
    cache = tmp_path / "state.json.cache" / "pix-qr"
    fresh_process()
    pix_qr_png(SAMPLE_PIX, cache)
    assert pixqr._segno_version() == segno.__version__
    monkeypatch.setattr(pixqr, "_segno_version", lambda: "0.0-other")
    pix_qr_png(SAMPLE_PIX, cache)
    assert len(list(cache.iterdir())) == 2


def test_run_once_keeps_the_images_beside_the_state_and_check_in_an_empty_folder_keeps_none(cli):
    from tests.conftest import ROOT
    cli("check", check=False)  # it renders a sample e-mail with a Pix code
    assert list(cli.workdir.iterdir()) == []
    (cli.workdir / "state.json").write_bytes((ROOT / "state.json.example").read_bytes())
    cli("run-once", "--date", "2026-11-23")
    assert caches.folder_for(cli.workdir / "state.json") == cli.workdir / "state.json.cache"
    images = sorted((cli.workdir / "state.json.cache" / "pix-qr").iterdir())
    assert images and all(p.read_bytes().startswith(b"\x89PNG") for p in images)
