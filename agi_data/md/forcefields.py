"""The classical rigid-ion force field of AgI (Vashishta–Rahman form).

The pair potential between ions i and j at distance r (Å, eV) is

    V_ij(r) = H_ij / r^η_ij  +  Z_i Z_j e² / r  −  P_ij / r⁴  −  C_ij / r⁶

(steric repulsion, Coulomb, charge–induced-dipole from the iodide's
polarisability, and an I–I van der Waals term). The form is that of
Vashishta & Rahman, Phys. Rev. Lett. 40, 1337 (1978) and Parrinello, Rahman
& Vashishta, Phys. Rev. Lett. 50, 1073 (1983); the parameters below are the
Shimojo–Kobayashi re-parametrisation of it, J. Phys. Soc. Jpn. 60, 3725
(1991), which is the one used for α-AgI by e.g. Bitrián & Trullàs,
J. Phys. Chem. B 112, 1718 (2008) ("RIM") and Varanasi & Yashonath,
J. Chem. Sci. 124, 159 (2012).

Source of the numbers
---------------------
The values (charge ±0.5815 e; η = 11, 9, 7; H = 0.16, 1310, 5328 eV·Å^η;
P = 0, 14.9, 29.8 eV·Å⁴; C_II = 84.5 eV·Å⁶) were taken, as published
numbers and not fitted here, from the public implementation of this
"re-parametrised Parrinello–Rahman–Vashishta" AgI potential in
github.com/amirhajibabaei/Wurtzite (``wurtzite/pair_potential.py``,
``rePRV``; charge in ``wurtzite/projects/AgI/force_field.py``; that code
cites no paper). The primary table (Shimojo & Kobayashi 1991) could not be
read from this machine, and no later paper that reprints it could be read
either: the stored copies of Bitrián & Trullàs (2008) and Varanasi &
Yashonath (2012) reach only their abstracts, which confirm that they use the
Shimojo–Kobayashi parametrisation of the Vashishta–Rahman/PRV form but print
no number. **No parameter has been checked against a published table.**

What was checked here (2026-11): the numbers are consistent with the PRV
construction P_ij = (α_i Z_j² + α_j Z_i²) e²/2 with a polarisable iodide
only — P_II = 2 P_AgI exactly, P_AgAg = 0 — which implies
α_I = 2 P_AgI / (Z² e²) = 6.12 Å³ at Z = 0.5815. To compare with a table that
prints H in e²·Å^(η−1) and P, C in e²·Å³, e²·Å⁵ (divide eV·Å^n by
e² = 14.3996 eV·Å): H = 0.01111 / 90.97 / 370.0, P = 0 / 1.0347 / 2.0695,
C_II = 5.868. In 10⁻¹⁹ J·Å^n (×1.602177): H = 0.2563 / 2098.9 / 8536.4,
P = 0 / 23.87 / 47.74, C_II = 135.4. A user who has Shimojo & Kobayashi's
table should compare it with these before quoting results (see docs/md.md).

How it runs in LAMMPS
---------------------
``pair_style hybrid/overlay vashishta coul/long r_c`` with ``kspace_style
pppm``: the short-range part goes through LAMMPS's own ``vashishta`` style
with Z_i = Z_j = 0 (Coulomb is done by ``coul/long`` + PPPM with the ionic
charges), λ₄ = 0 (LAMMPS then leaves −D/r⁴ unscreened: D = P), W = C, and
B = 0, r₀ = 0 (no three-body term: the AgI model is pairwise). LAMMPS's
``vashishta`` truncates the short-range pair term with a shifted force,
V(r) − V(r_c) − (r − r_c) V′(r_c); :func:`short_range_pair_energy` gives the
same function so that tests can check LAMMPS against an independent sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: e²/(4πε₀) in eV·Å, the value LAMMPS uses in ``units metal`` (qqr2e).
COULOMB_EV_A = 14.399645


@dataclass(frozen=True)
class PairTerm:
    """Short-range parameters of one pair: H/r^η − P/r⁴ − C/r⁶ (eV, Å)."""

    eta: int
    H: float  # eV·Å^η
    P: float  # eV·Å⁴
    C: float  # eV·Å⁶

    def energy(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        return self.H / r**self.eta - self.P / r**4 - self.C / r**6

    def derivative(self, r: np.ndarray) -> np.ndarray:
        """dV/dr, eV/Å."""
        r = np.asarray(r, dtype=np.float64)
        return -self.eta * self.H / r ** (self.eta + 1) + 4 * self.P / r**5 + 6 * self.C / r**7


@dataclass(frozen=True)
class RigidIonForceField:
    """A rigid-ion pair potential of the Vashishta–Rahman form."""

    name: str
    charges: dict[str, float]
    pairs: dict[tuple[str, str], PairTerm]
    citation: str
    source: str
    cutoff: float = 10.0  # Å, short-range and real-space Coulomb cutoff
    kspace_accuracy: float = 1e-5  # relative force accuracy of PPPM
    notes: str = ""
    elements: tuple[str, ...] = field(default=("Ag", "I"))

    def pair(self, a: str, b: str) -> PairTerm:
        try:
            return self.pairs[(a, b)]
        except KeyError:
            try:
                return self.pairs[(b, a)]
            except KeyError:
                raise KeyError(f"{self.name} has no {a}–{b} pair term; elements: {self.elements}") from None

    def short_range_pair_energy(self, a: str, b: str, r: np.ndarray) -> np.ndarray:
        """The short-range pair energy as LAMMPS computes it (shifted force at r_c), eV; 0 beyond r_c."""
        t = self.pair(a, b)
        rc = self.cutoff
        r = np.asarray(r, dtype=np.float64)
        e = t.energy(r) - t.energy(rc) - (r - rc) * t.derivative(rc)
        return np.where(r < rc, e, 0.0)

    def total_charge(self, symbols) -> float:
        return float(sum(self.charges[s] for s in symbols))

    # ------------------------------------------------------------------ LAMMPS
    def write_lammps_potential(self, path: str | Path) -> Path:
        """Write the short-range terms as a LAMMPS ``vashishta`` potential file (metal units)."""
        path = Path(path)
        lines = [
            f"# {self.name}: short-range part of the rigid-ion AgI model for pair_style vashishta",
            f"# CITATION: {self.citation}",
            f"# SOURCE OF THE NUMBERS: {self.source}",
            "# UNITS: metal. Zi = Zj = 0 (Coulomb via coul/long + PPPM), lambda4 = 0 (unscreened D/r^4),",
            "# B = 0 and r0 = 0 (no three-body term).",
            "# el1 el2 el3  H eta Zi Zj lambda1 D lambda4  W rc B gamma r0 C costheta",
        ]
        for e1 in self.elements:
            for e2 in self.elements:
                for e3 in self.elements:
                    if e2 == e3:  # two-body terms are read from the (i, j, j) entries
                        t = self.pair(e1, e2)
                        vals = [t.H, t.eta, 0.0, 0.0, 1.0, t.P, 0.0, t.C, self.cutoff, 0.0, 0.0, 0.0, 0.0, 0.0]
                    else:
                        vals = [0.0] * 8 + [self.cutoff] + [0.0] * 5
                    lines.append(f"{e1} {e2} {e3} " + " ".join(repr(float(v)) for v in vals))
        path.write_text("\n".join(lines) + "\n")
        return path

    def lammps_commands(self, potential_file: str | Path) -> list[str]:
        """Pair, charge and k-space commands; atom types are numbered in ``self.elements`` order."""
        cmds = [
            f"pair_style hybrid/overlay vashishta coul/long {self.cutoff}",
            f"pair_coeff * * vashishta {potential_file} {' '.join(self.elements)}",
            "pair_coeff * * coul/long",
        ]
        for t, el in enumerate(self.elements, start=1):
            cmds.append(f"set type {t} charge {self.charges[el]!r}")
        cmds.append(f"kspace_style pppm {self.kspace_accuracy}")
        return cmds

    def describe(self) -> dict:
        return {
            "name": self.name,
            "form": "V = H/r^eta + Zi Zj e^2/r - P/r^4 - C/r^6",
            "charges_e": dict(self.charges),
            "pairs": {f"{a}-{b}": {"eta": t.eta, "H_eV_A^eta": t.H, "P_eV_A^4": t.P, "C_eV_A^6": t.C}
                      for (a, b), t in self.pairs.items()},
            "cutoff_A": self.cutoff,
            "kspace": f"pppm {self.kspace_accuracy}",
            "citation": self.citation,
            "source": self.source,
        }


#: Shimojo–Kobayashi parametrisation of the Parrinello–Rahman–Vashishta AgI potential.
#: Numbers: see the module docstring ("Source of the numbers"); not yet checked
#: against a published table.
AGI_SHIMOJO_KOBAYASHI = RigidIonForceField(
    name="agi-vashishta-rahman-sk",
    charges={"Ag": 0.5815, "I": -0.5815},  # e
    pairs={
        ("Ag", "Ag"): PairTerm(eta=11, H=0.16, P=0.0, C=0.0),
        ("Ag", "I"): PairTerm(eta=9, H=1310.0, P=14.9, C=0.0),
        ("I", "I"): PairTerm(eta=7, H=5328.0, P=29.8, C=84.5),
    },
    citation=(
        "F. Shimojo and M. Kobayashi, J. Phys. Soc. Jpn. 60, 3725 (1991), re-parametrising "
        "M. Parrinello, A. Rahman and P. Vashishta, Phys. Rev. Lett. 50, 1073 (1983) "
        "(form of P. Vashishta and A. Rahman, Phys. Rev. Lett. 40, 1337 (1978))"
    ),
    source=(
        "values as implemented in github.com/amirhajibabaei/Wurtzite "
        "(wurtzite/pair_potential.py rePRV; charge 0.5815 in wurtzite/projects/AgI/force_field.py)"
    ),
)

FORCE_FIELDS = {AGI_SHIMOJO_KOBAYASHI.name: AGI_SHIMOJO_KOBAYASHI, "vashishta-agi": AGI_SHIMOJO_KOBAYASHI}


def get_force_field(name: str) -> RigidIonForceField:
    from .errors import MDError

    try:
        return FORCE_FIELDS[name]
    except KeyError:
        raise MDError(f"unknown force field {name!r}; known: {sorted(FORCE_FIELDS)}") from None
