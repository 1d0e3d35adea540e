"""The `notifier` command: the group and its commands, one module per kind of user."""
from __future__ import annotations

from . import billing, customers, daemon, finance, forecast, operations, planning, staff, tracking  # noqa: F401  (each registers its commands)
from . import base
from .base import cli

__all__ = ["cli", "main"]


def main() -> None:
    base.PROCESS_ENDS_WITH_COMMAND = True
    cli(prog_name="notifier")
