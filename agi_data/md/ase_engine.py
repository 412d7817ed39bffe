"""ASE as an MD engine: any ASE calculator, in particular an Allegro/NequIP model.

Integrators (ASE's): Langevin (BBK-type, ``ase.md.Langevin``; friction
1/``damping_fs``), Nosé–Hoover chain (``ase.md.nose_hoover_chain.
NoseHooverChainNVT``, Martyna–Klein–Tuckerman 1992; time constant
``damping_fs``) and velocity Verlet for NVE.

Continuation: the Langevin noise between stored frames f and f+1 comes from
a generator seeded with :func:`~agi_data.md.base.langevin_seed` (seed, f);
the Nosé–Hoover chain variables are returned by :meth:`AseEngine.state` after
every frame and restored from it, so a continued run repeats the frames of
an uninterrupted one for every ensemble.

Allegro models: :func:`load_nequip_calculator` loads a packaged model
(``.nequip.zip``, from ``nequip-package build``), a training checkpoint
(``.ckpt``) or an AOTInductor-compiled model (``.nequip.pt2``, from
``nequip-compile --mode aotinductor --target ase``) as a
``nequip.integrations.ase.NequIPCalculator``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms, units

from .base import ASE_VELOCITY_TO_A_PER_PS, Engine, Frame, MDSettings, langevin_seed
from .errors import EngineNotFoundError, MDError


def load_nequip_calculator(model_path: str | Path, device: str = "cpu"):
    """A ``NequIPCalculator`` for a packaged (.nequip.zip), checkpoint (.ckpt) or compiled (.nequip.pt2) model.

    Returns ``(calculator, type_names, r_max)``. The model's type names are
    taken as chemical symbols (Allegro models of this project are trained with
    type names equal to the elements).
    """
    try:
        from nequip.integrations.ase import NequIPCalculator
    except ImportError as exc:  # pragma: no cover - nequip is a dependency
        raise EngineNotFoundError("nequip is not installed: pip install 'nequip==0.19.*' nequip-allegro==0.8.3") from exc
    path = Path(model_path)
    if not path.exists():
        raise MDError(f"model file {path} does not exist")
    name = path.name
    if name.endswith(".pt2"):
        calc = NequIPCalculator.from_compiled_model(str(path), device=device, chemical_species_to_atom_type_map=True)
        type_names = list(calc.transforms[0].model_type_names)  # ChemicalSpeciesToAtomTypeMapper
        r_max = float(calc.transforms[-1].r_max)  # NeighborListTransform
        return calc, type_names, r_max
    from nequip.integrations.utils import basic_transforms
    from nequip.model.saved_models.load_utils import load_saved_model
    from nequip.nn import graph_model

    model = load_saved_model(str(path), compile_mode="eager")
    model.eval()
    r_max = float(model.metadata[graph_model.R_MAX_KEY])
    type_names = model.metadata[graph_model.TYPE_NAMES_KEY].split(" ")
    transforms = basic_transforms(model.metadata, r_max, type_names, {t: t for t in type_names})
    return NequIPCalculator(model=model, device=device, transforms=transforms), type_names, r_max


class AseEngine(Engine):
    """MD with ASE's integrators and any ASE calculator.

    Parameters
    ----------
    calculator
        An ASE calculator (computes energy and forces).
    elements
        Elements the potential knows (None: not checked).
    potential
        Name recorded in the store; ``potential_uuid``: the AiiDA node of the
        potential, recorded as well.
    """

    name = "ase"

    def __init__(self, calculator, *, elements=None, potential: str = "ase-calculator",
                 potential_uuid: str | None = None, extra_attrs: dict | None = None):
        self.calculator = calculator
        self._elements = tuple(elements) if elements is not None else None
        self.potential = potential
        self.potential_uuid = potential_uuid
        self.extra_attrs = dict(extra_attrs or {})
        self._state: dict = {}

    @classmethod
    def from_nequip_model(cls, model_path: str | Path, *, device: str = "cpu", potential_uuid: str | None = None):
        calc, type_names, r_max = load_nequip_calculator(model_path, device=device)
        return cls(calc, elements=type_names, potential=f"allegro:{Path(model_path).name}",
                   potential_uuid=potential_uuid,
                   # a model handed over by AiiDA sits in a temporary copy: record its name and node, not that path
                   extra_attrs={"model_file": Path(model_path).name if potential_uuid else str(Path(model_path).resolve()),
                                "model_r_max_A": r_max, "device": str(device)})

    @property
    def elements(self):
        return self._elements

    def describe(self) -> dict:
        import ase

        d = {"engine": "ase", "engine_version": ase.__version__, "potential": self.potential,
             "calculator": type(self.calculator).__name__, **self.extra_attrs}
        if type(self.calculator).__module__.startswith("nequip"):
            import nequip

            d["nequip_version"] = nequip.__version__
            try:
                import allegro

                d["allegro_version"] = allegro.__version__
            except (ImportError, AttributeError):
                pass
        if self.potential_uuid:
            d["potential_uuid"] = self.potential_uuid
        return d

    def state(self) -> dict:
        return dict(self._state)

    @staticmethod
    def _dynamics(atoms: Atoms, s: MDSettings):
        dt = s.timestep_fs * units.fs
        if s.ensemble == "langevin":
            from ase.constraints import FixCom
            from ase.md.langevin import Langevin

            atoms.set_constraint(FixCom())  # the noise must not move the centre of mass
            return Langevin(atoms, dt, temperature_K=s.temperature_K, friction=1.0 / (s.damping_fs * units.fs),
                            fixcm=False, rng=np.random.default_rng(0))
        if s.ensemble == "nose-hoover":
            from ase.md.nose_hoover_chain import NoseHooverChainNVT

            return NoseHooverChainNVT(atoms, dt, temperature_K=s.temperature_K, tdamp=s.damping_fs * units.fs)
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, dt)

    def run(self, atoms, velocities, settings, *, first_frame, n_frames, include_initial, state=None
            ) -> Iterator[Frame]:
        self.check_species(atoms.get_chemical_symbols())
        a = atoms.copy()
        a.calc = self.calculator
        a.set_velocities(np.asarray(velocities, dtype=np.float64) / ASE_VELOCITY_TO_A_PER_PS)
        dyn = self._dynamics(a, settings)
        nh = getattr(dyn, "_thermostat", None)
        if nh is not None and state and "nhc_eta" in state:
            nh._eta = np.array(state["nhc_eta"], dtype=float)
            nh._p_eta = np.array(state["nhc_p_eta"], dtype=float)
        takes_forces = settings.ensemble != "nose-hoover"
        forces = a.get_forces()
        stride = settings.stride
        if include_initial:
            yield self._frame(a, forces, first_frame * stride, nh)
        for k in range(n_frames):
            f = first_frame + k
            if settings.ensemble == "langevin":
                dyn.rng = np.random.default_rng(langevin_seed(settings.seed, f))
            for _ in range(stride):
                if takes_forces:
                    forces = dyn.step(forces)
                else:
                    dyn.step()
            if not takes_forces:
                forces = a.get_forces()
            yield self._frame(a, forces, (f + 1) * stride, nh)

    def _frame(self, a: Atoms, forces, step: int, nh) -> Frame:
        if nh is not None:
            self._state = {"nhc_eta": nh._eta.tolist(), "nhc_p_eta": nh._p_eta.tolist()}
        return Frame(step=step, positions=a.positions.copy(),
                     velocities=a.get_velocities() * ASE_VELOCITY_TO_A_PER_PS,
                     forces=np.array(forces, dtype=np.float64), energy=float(a.get_potential_energy()),
                     cell=a.cell.array.copy())
