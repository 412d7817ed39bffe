"""What the Wannier chain needs from Quantum ESPRESSO's standard output: convergence, gap, wall time.

The step-by-step ``agi.wannier`` route reads pw.x through aiida-quantumespresso's parser; the
batched route (``agi.wannier_batch``) runs pw.x and pw2wannier90.x inside one CalcJob and reads
their text output here. Energies in eV.
"""

from __future__ import annotations

import re

from agi_data.units import RYDBERG_EV

_FLOAT = r"[-+]?\d*\.?\d+(?:[eEdD][-+]?\d+)?"


def qe_wall_seconds(text: str, program: str) -> float | None:
    """Wall seconds of a QE timing line such as ``PWSCF : 34.55s CPU 1m40.11s WALL``; None when absent."""
    m = re.search(rf"{program}\s*:.*CPU\s+(?:(\d+)h)?\s*(?:(\d+)m)?\s*([\d.]+)s\s+WALL", text)
    if not m:
        return None
    h, mi, sec = m.groups()
    return 3600 * int(h or 0) + 60 * int(mi or 0) + float(sec)


def qe_error(text: str) -> str | None:
    """The message of QE's ``%%%%`` error block (routine and text, on one line), None without one."""
    m = re.search(r"%{10,}\s*\n(.*?)\n\s*%{10,}", text, re.S)
    return " ".join(m.group(1).split()) if m else None


def parse_pw_stdout(text: str) -> dict:
    """Convergence, total energy (eV), Γ HOMO/LUMO (eV) and wall time of a pw.x SCF's standard output.

    ``converged`` is True ("convergence has been achieved"), False ("convergence NOT achieved")
    or None (neither line: the run stopped before the end of the SCF). ``gap_eV`` needs empty
    bands (``nbnd`` above the occupied ones): pw.x then prints the lowest unoccupied level.
    """
    out: dict = {"job_done": "JOB DONE" in text, "error": qe_error(text)}
    m = re.search(r"convergence has been achieved in\s+(\d+)\s+iterations", text)
    if m:
        out["converged"], out["n_scf_iterations"] = True, int(m.group(1))
    elif "convergence NOT achieved" in text:
        out["converged"], out["n_scf_iterations"] = False, None
    else:
        out["converged"], out["n_scf_iterations"] = None, None
    energies = re.findall(rf"^!\s+total energy\s+=\s+({_FLOAT})\s+Ry", text, re.M)
    out["total_energy_eV"] = float(energies[-1]) * RYDBERG_EV if energies else None
    m = re.search(rf"highest occupied, lowest unoccupied level \(ev\):\s+({_FLOAT})\s+({_FLOAT})", text)
    if m:
        homo, lumo = float(m.group(1)), float(m.group(2))
        out.update(homo_eV=homo, lumo_eV=lumo, gap_eV=lumo - homo)
    else:
        m = re.search(rf"highest occupied level \(ev\):\s+({_FLOAT})", text)
        out.update(homo_eV=float(m.group(1)) if m else None, lumo_eV=None, gap_eV=None)
    out["wall_time_seconds"] = qe_wall_seconds(text, "PWSCF")
    return out
