"""What the Wannier chain needs from Quantum ESPRESSO's standard output: convergence, gap, wall time.

The step-by-step ``agi.wannier`` route reads pw.x through aiida-quantumespresso's parser; the
batched route (``agi.wannier_batch``) runs pw.x and pw2wannier90.x inside one CalcJob and reads
their text output here. Both routes judge a non-converged SCF with :func:`scf_outlook` (is a
restart worth it?). Energies in eV, SCF accuracy in Ry.
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

    ``scf_accuracy_Ry``: pw.x's estimated SCF accuracy after each step, Ry (what :func:`scf_outlook`
    reads). ``converged`` is True ("convergence has been achieved"), False ("convergence NOT achieved")
    or None (neither line: the run stopped before the end of the SCF). ``gap_eV`` needs empty
    bands (``nbnd`` above the occupied ones): pw.x then prints the lowest unoccupied level.
    """
    out: dict = {"job_done": "JOB DONE" in text, "error": qe_error(text),
                 "scf_accuracy_Ry": [float(x) for x in re.findall(
                     rf"estimated scf accuracy\s+<\s+({_FLOAT})\s+Ry", text)]}
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


def scf_outlook(accuracy, conv_thr: float, steps_left: int) -> dict:
    r"""Whether a pw.x SCF that stopped at ``electron_maxstep`` is worth restarting: its convergence trend.

    Over the last :math:`w = \max(3, \lceil n/2 \rceil)` of its :math:`n` steps, the estimated accuracy
    :math:`\delta_i` (Ry) is fitted by :math:`\log_{10}\delta_i = a + s\,i` (least squares; :math:`s` in
    decades per step). A run that converges linearly, as a healthy Broyden-mixed SCF of an insulator
    does, has :math:`s < 0` and needs

    .. math:: n_\text{more} = \frac{a + s\,n - \log_{10}\varepsilon}{-s}

    more steps to reach :math:`\varepsilon` = ``conv_thr``. The verdict is ``retry`` when
    :math:`n_\text{more}` fits in ``steps_left`` (the SCF steps the remaining restarts allow) and
    ``stalled`` otherwise — :math:`s \ge 0` (no progress: charge sloshing of a frame without a gap,
    atoms on top of each other) or a rate too slow for the budget. Fewer than 3 steps: ``retry``
    (too short to judge). The same rule runs inside the ``agi.wannier_batch`` job script (awk,
    :data:`~agi_data.aiida.calculations.wannier_batch.SCF_OUTLOOK_AWK`; a test checks they agree).

    Reference: D. D. Johnson, Phys. Rev. B 38, 12807 (1988) (the modified Broyden mixing of pw.x).

    :param accuracy: the estimated SCF accuracy after each step, Ry (``parse_pw_stdout()['scf_accuracy_Ry']``).
    :param conv_thr: pw.x's ``conv_thr``, Ry.
    :param steps_left: SCF steps the remaining attempts may take together.
    :return: ``{"verdict", "slope_decades_per_step", "steps_needed"}`` (the last two None when not fitted;
        ``steps_needed`` None also when :math:`s \ge 0`).
    """
    import math

    acc = [float(a) for a in accuracy if float(a) > 0]
    n = len(acc)
    if n < 3:
        return {"verdict": "retry", "slope_decades_per_step": None, "steps_needed": None}
    w = max(3, -(-n // 2))
    xs = list(range(n - w + 1, n + 1))
    ys = [math.log10(a) for a in acc[n - w:]]
    mx, my = sum(xs) / w, sum(ys) / w
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    if slope >= 0:
        return {"verdict": "stalled", "slope_decades_per_step": round(slope, 4), "steps_needed": None}
    needed = (my + slope * (n - mx) - math.log10(conv_thr)) / -slope
    return {"verdict": "retry" if needed <= steps_left else "stalled",
            "slope_decades_per_step": round(slope, 4), "steps_needed": round(needed, 1)}
