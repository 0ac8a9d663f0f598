"""Epoch checkpoints: a cell interrupted mid-training resumes at its next epoch, bit for bit.

A cell that trains for an hour on a CPU and is stopped (Ctrl-C, a killed job, a lost node, the
end of a Slurm allocation) would otherwise start again from epoch 0. After every epoch that does
not end training, the worker writes everything the rest of the run depends on to
``<results>/<suite>/.checkpoints/<cell hash>.pt``: the weights, Adam's state, the best weights
and score so far, the early-stopping counter, the shuffling generator and torch's global
generators (dropout, BERT4Rec's masks, sampled negatives), the curve and the cell's log so far.
The next try of the same cell (same hash, so the same settings and device type) loads it and
trains on from the following epoch; its numbers are those of an uninterrupted run (a test checks
ranks and curve for equality).

A checkpoint is trusted only when written by the same seqbench and torch versions (arithmetic may
change between them); otherwise, or when it cannot be read, it is discarded with a log line and
the cell starts from epoch 0. Tuning trials and throughput cells write none (a trial is cheap and
Optuna has already seen its reports; a throughput cell does not train to a result). The store
removes a cell's checkpoint when it publishes the cell (:meth:`seqbench.store.SuiteStore.publish`),
so checkpoints exist only for cells that ended without a record. Writing one is atomic
(:mod:`seqbench.atomic`); a folder that cannot be written costs the resume, never the cell.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import seqbench
from seqbench import atomic

if TYPE_CHECKING:
    import torch

log = logging.getLogger("seqbench.checkpoint")

#: The store's folder of checkpoints (one ``<hash>.pt`` per cell in training).
FOLDER = ".checkpoints"


def path_for(suite_dir: Path, cell_hash: str) -> Path:
    """Where the checkpoint of cell ``cell_hash`` of the suite in ``suite_dir`` lives."""
    return Path(suite_dir) / FOLDER / f"{cell_hash}.pt"


@dataclass
class EpochCheckpoint:
    """The checkpoint file of one cell, and the log whose text it carries."""

    path: Path
    cell_hash: str
    log_path: Path | None = None
    _disabled: bool = field(default=False, repr=False)

    @property
    def key(self) -> dict[str, str]:
        """What must match for a saved state to be resumed."""
        import torch

        return {
            "cell": self.cell_hash,
            "seqbench": seqbench.__version__,
            "torch": str(torch.__version__),
        }

    def load(self) -> dict[str, Any] | None:
        """The saved training state, or None (no checkpoint, or one not to be trusted, which is
        then removed)."""
        import torch

        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any unreadable file: start afresh
            log.warning("checkpoint %s is unreadable (%s); training from epoch 0", self.path, exc)
            self.remove()
            return None
        saved = state.get("key") if isinstance(state, dict) else None
        if saved != self.key:
            log.warning(
                "checkpoint %s was written by %s, this is %s; training from epoch 0",
                self.path,
                saved,
                self.key,
            )
            self.remove()
            return None
        return state

    def saved_epoch(self) -> int | None:
        """The epoch a resume would train on after, or None (no checkpoint, or one that
        :meth:`load` would discard); reads only, for ``seqbench run --dry-run``."""
        import torch

        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # unreadable: load() would discard it
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            return None
        return int(state["epoch"])

    def restore_log(self, state: dict[str, Any]) -> None:
        """Put the interrupted tries' log (carried by the checkpoint) before this try's lines,
        with a line where this try takes over, so that the published cell.log tells every epoch
        in order, however many times the cell was resumed.

        The file is rewritten in place: the log handler and stderr hold it open in append mode,
        so their next lines still land at its end."""
        text = str(state.get("log") or "")
        if self.log_path is None or not text:
            return
        epoch = int(state["epoch"])
        marker = f"---- interrupted after epoch {epoch}; resuming at epoch {epoch + 1} ----\n"
        current = self._log_text()
        with open(self.log_path, "r+", encoding="utf-8") as f:
            f.write((text if text.endswith("\n") else text + "\n") + marker + current)
            f.truncate()

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (and the log so far) atomically; a failure is logged once and turns
        checkpointing off for the cell."""
        import torch

        if self._disabled:
            return
        payload = {"key": self.key, **state, "log": self._log_text()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_with(self.path, lambda f: torch.save(payload, f))
        except OSError as exc:
            log.warning("cannot write checkpoint %s (%s); the cell cannot resume", self.path, exc)
            self._disabled = True

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _log_text(self) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's global generators that training draws from (CPU, and the CUDA device's)."""
    import torch

    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    import torch

    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
