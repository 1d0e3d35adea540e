"""Finance's budget view: what the ladder will send in the coming days, and what it costs."""
from __future__ import annotations

import sys
from datetime import date, timedelta

import click

from .base import Context, cli, date_option, echo_json, print_table


@cli.command()
# --from as finance says it (issue 10); --date as every other command says it.
@date_option("The first day of the forecast (YYYY-MM-DD); default: today.", names=("--from", "--date"))
@click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True, help="How many days.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="csv: for Excel in Portuguese (semicolon, UTF-8 with BOM, decimal comma).")
@click.pass_obj
def forecast(obj: Context, day: date | None, days: int, fmt: str):
    """Messages per day, stage and channel the ladder will send if nobody pays, with their cost.

    Built from the real day plan over the stored open invoices (catch-up, merges and the
    first-time extra channels included), with contact hours (WhatsApp, SMS and social wait for a
    day that allows them) and staff holds; invoices not yet issued are not in it. Prices come from
    the configuration's [prices] table (BRL)."""
    from notifier.reports.forecast import store_forecast, totals
    from notifier.run.render import brl
    start = obj.today(day)
    rows = store_forecast(obj.store().snapshot(), obj.config, start, days)
    if fmt == "json":
        echo_json([r.to_json() for r in rows])
        return
    if fmt == "csv":
        from notifier.reports.exports import write_forecast_csv
        write_forecast_csv(rows, sys.stdout)
        return
    print_table(["date", "stage", "channel", "messages", "cost"],
                [[f"{r.date:%d/%m/%Y}", r.stage, r.channel, r.messages, brl(r.cost)] for r in rows])
    click.echo("")
    summary = totals(rows)
    print_table(["channel", "messages", "cost"], [[c, n, brl(cost)] for c, (n, cost) in summary.items()])
    end = start + timedelta(days=days - 1)
    messages = sum(n for n, _ in summary.values())
    cost = sum((c for _, c in summary.values()), start=0)
    click.echo(f"{messages} messages from {start:%d/%m/%Y} to {end:%d/%m/%Y}, {brl(cost)} in all, if nobody pays")
