"""Command-line options that choose where cells run (shared by ``run`` and ``tune``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from seqbench.cli.common import parse_duration
from seqbench.errors import ConfigError

if TYPE_CHECKING:
    from seqbench.runner import ClusterOptions

PANEL = "Where cells run"
EXECUTORS = ("local", "ray", "slurm")

ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        help="local (worker processes here, --jobs), ray (a Ray cluster: --address, or one "
        "started for the run), or slurm (a job array through submitit). docs/cluster.md.",
        rich_help_panel=PANEL,
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(help="Ray: join the cluster at HOST:PORT.", rich_help_panel=PANEL),
]
CpusPerCellOption = Annotated[
    float,
    typer.Option(min=0.0, help="Ray: CPUs each cell reserves.", rich_help_panel=PANEL),
]
GpusPerCellOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        help="Ray: GPUs each cell reserves (fractions pack small cells on one GPU).",
        rich_help_panel=PANEL,
    ),
]
MaxRetriesOption = Annotated[
    int,
    typer.Option(
        min=0,
        help="Ray/Slurm: times a cell is tried again when the process running it dies.",
        rich_help_panel=PANEL,
    ),
]
SlurmPartitionOption = Annotated[
    str | None, typer.Option(help="Slurm: the partition.", rich_help_panel=PANEL)
]
SlurmTimeOption = Annotated[
    str, typer.Option(help="Slurm: time limit of each task (e.g. 90m, 4h).", rich_help_panel=PANEL)
]
SlurmGpusOption = Annotated[
    int, typer.Option(min=0, help="Slurm: GPUs per task.", rich_help_panel=PANEL)
]
SlurmCpusOption = Annotated[
    int, typer.Option(min=1, help="Slurm: CPUs per task.", rich_help_panel=PANEL)
]
ArrayParallelismOption = Annotated[
    int,
    typer.Option(min=1, help="Slurm: array tasks running at once.", rich_help_panel=PANEL),
]


def check_executor(name: str) -> str:
    if name not in EXECUTORS:
        raise ConfigError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")
    return name


def slurm_minutes(text: str) -> int:
    return max(1, round(parse_duration(text, "--slurm-time") / 60))


def cluster_options(
    executor: str,
    address: str | None,
    cpus_per_cell: float,
    gpus_per_cell: float,
    max_retries: int,
    slurm_partition: str | None,
    slurm_time: str,
    slurm_gpus_per_task: int,
    slurm_cpus_per_task: int,
    array_parallelism: int,
) -> ClusterOptions:
    """The options above, checked, as the runner's :class:`~seqbench.runner.ClusterOptions`."""
    from seqbench.runner import ClusterOptions

    return ClusterOptions(
        executor=check_executor(executor),
        address=address,
        cpus_per_cell=cpus_per_cell,
        gpus_per_cell=gpus_per_cell,
        max_retries=max_retries,
        slurm_partition=slurm_partition,
        slurm_minutes=slurm_minutes(slurm_time),
        slurm_gpus_per_task=slurm_gpus_per_task,
        slurm_cpus_per_task=slurm_cpus_per_task,
        array_parallelism=array_parallelism,
    )
