"""Entry point of the ``seqbench`` command."""

from __future__ import annotations

from typing import Annotated

import typer

import seqbench
from seqbench.cli import data, doctor, evaluate, models, report, run, tune, validate
from seqbench.cli.common import invocation, out, setup_logging

app = typer.Typer(
    name="seqbench",
    help="Benchmark and dissect sequential recommenders: suites, ablations, seeds, honest stats.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data.app, name="data")
app.command("run")(run.run)
app.command("tune")(tune.tune)
app.command("models")(models.list_models)
app.command("validate")(validate.validate)
app.command("report")(report.report)
app.command("evaluate")(evaluate.evaluate)
app.command("doctor")(doctor.doctor)


def _version(value: bool) -> None:
    if value:
        out.print(f"seqbench {seqbench.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks for seqbench errors.")
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    """seqbench command line."""
    invocation.debug = debug
    setup_logging(verbose)


def main() -> None:
    app()
