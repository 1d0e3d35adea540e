"""Durable file writes: the one helper the store, the attempt log and its message store share."""
from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Flush a directory's entries to disk: without it a new file's name, or a rename over an old
    one, may not survive a power cut even though the file's bytes were fsynced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
