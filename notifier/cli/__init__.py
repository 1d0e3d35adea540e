"""The `notifier` command: the group and its commands, one module per kind of user."""
from __future__ import annotations

from . import billing, customers, daemon, finance, forecast, operations, planning, staff, tracking  # noqa: F401  (each registers its commands)
from .base import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="notifier")
