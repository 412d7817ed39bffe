r"""Which dynamics a run holds, and the warning when a thermostat biases what is analysed.

A Langevin thermostat on every atom adds its own friction γ (ps⁻¹) to every
ion: :math:`m\dot v = F - m\gamma v + \sqrt{2m\gamma k_BT}\,\eta`. Against an
intrinsic Ag⁺ friction :math:`k_BT/(mD) \approx 15` ps⁻¹ (D ≈ 0.4 Å²/ps at
750 K) a typical γ = 10 ps⁻¹ makes the diffusion coefficient, the hop rates
and the velocity correlations thermostat quantities, and the force route of
the memory kernel returns only the potential's part (the stored force holds
no thermostat term), so the Einstein check :math:`\int K\,dt = k_BT/(mD)`
fails. Transport, hop and kernel analyses therefore call
:func:`ensemble_attrs`, which emits :class:`ThermostatWarning` on a run whose
``ensemble`` attr is ``langevin`` and returns attrs that say which dynamics
the result comes from. A Nosé–Hoover (chain) run is global: it rescales all
velocities together and leaves single-ion dynamics nearly intact at weak
coupling; it is reported in the attrs (``ensemble``, ``thermostat``), not
warned about. Analyse NVE production where the friction itself is measured.
"""

from __future__ import annotations

import warnings

import xarray as xr

__all__ = ["ThermostatWarning", "ensemble_attrs"]

_LANGEVIN = ("langevin",)
_NOSE_HOOVER = ("nose-hoover", "nose_hoover", "nosehoover", "nose-hoover-chain", "nhc")


class ThermostatWarning(UserWarning):
    """The analysed run was thermostatted per atom (Langevin): its dynamics carry the thermostat's friction."""


def ensemble_attrs(traj: xr.Dataset, analysis: str, *, stacklevel: int = 3) -> dict:
    """Attrs naming the run's dynamics; warns :class:`ThermostatWarning` for a Langevin run.

    ``analysis`` names the result in the message (e.g. ``"memory_kernel"``).
    Returns ``{"ensemble": ..., "thermostat": ...}`` (``"none"`` for NVE,
    ``"unknown"`` when the run does not say).
    """
    ens = str(traj.attrs.get("ensemble", "")).strip().lower()
    if ens in _LANGEVIN:
        damping_fs = traj.attrs.get("damping_fs")
        gamma = f"γ = {1000.0 / float(damping_fs):.3g} ps⁻¹ (damping {float(damping_fs):g} fs)" \
            if damping_fs else "friction γ = 1/damping"
        warnings.warn(
            f"{analysis} of run {traj.attrs.get('run_id', '(unnamed)')!r}: the run was made under a Langevin "
            f"thermostat on every atom ({gamma}); diffusion, hop rates and velocity correlations include the "
            "thermostat's friction, and the force route of the kernel misses it (∫K dt < k_BT/(mD)). Analyse an "
            "NVE production run (or a weak global thermostat) instead", ThermostatWarning, stacklevel=stacklevel)
        return {"ensemble": "langevin", "thermostat": f"Langevin, {gamma}: results biased by the thermostat"}
    if ens in _NOSE_HOOVER:
        return {"ensemble": "nose-hoover", "thermostat": "Nosé–Hoover (global): single-ion dynamics perturbed "
                                                         "only through the common velocity scaling"}
    if ens == "nve":
        return {"ensemble": "nve", "thermostat": "none"}
    return {"ensemble": ens or "unknown", "thermostat": "unknown" if not ens else ens}
