"""Computers of this machine with every agi code on them (``agi setup --computer``).

Above :mod:`agi_data.aiida.setup` and the CalcJob modules that register their own codes.
"""

from __future__ import annotations

from .calculations.md_job import ensure_md_code
from .calculations.nequip_train import ensure_nequip_code
from .setup import ensure_codes, ensure_computer

__all__ = ["setup_computer"]


def setup_computer(label: str, scheduler: str = "core.slurm", *, mpiprocs: int | None = None) -> dict:
    """A computer of this machine with ``scheduler`` and every agi code on it; returns ``{name: "label@computer"}``.

    For the one-node Slurm of ``scripts/slurm-cluster.sh`` (``agi setup --computer local-slurm``); a remote
    cluster is set up with ``verdi computer setup --config`` (docs/cluster.md).
    """
    computer = ensure_computer(label, scheduler=scheduler, mpiprocs=mpiprocs)
    codes = {name: code.full_label for name, code in ensure_codes(computer).items()}
    codes["agi-md"] = ensure_md_code(computer).full_label
    codes["nequip-train"] = ensure_nequip_code(computer).full_label
    return codes
