r"""Seeded trajectories of free particles obeying a generalized Langevin equation.

The particles follow the mass-normalised GLE of docs/analysis-gle.md

.. math:: \dot v(t) = -\int_0^t K(t-s)\,v(s)\,ds - \gamma v(t) + \delta F(t)/m,

with a kernel :math:`K(t) = c^\top e^{-At} c` realised by **Markovian
embedding**: k auxiliary Ornstein–Uhlenbeck variables ξ per Cartesian
component,

.. math::

    \dot x = v,\qquad \dot v = c\cdot\xi - \gamma v + \sqrt{2\gamma\sigma^2}\,\eta_v,\qquad
    \dot\xi = -A\xi - c\,v + B\eta_\xi,\quad BB^\top = \sigma^2 (A + A^\top),

with σ² = k_BT/m. The couplings c·ξ and −c v are antisymmetric, the
dissipation and the noise balance, so the stationary law of (v, ξ) is
Gaussian with covariance σ²·I: v and ξ are independent at equal times and
the noise c·ξ(t) felt by the particle obeys the fluctuation–dissipation
theorem ⟨δF(0)δF(t)⟩/m² = σ² K(t) (Ceriotti, Bussi & Parrinello, J. Chem.
Theory Comput. 6, 1170 (2010); Kupferman, J. Stat. Phys. 114, 291 (2004)).

The linear SDE is advanced **exactly** in distribution (Van Loan's matrix
exponential for the transition matrix and the noise covariance of the
state (x, v, ξ)), so there is no integration error at any time step and the
stationary start needs no equilibration. The force recorded at every frame
is the physical force the particle feels, ``F = m c·ξ`` (eV/Å), at the same
instant as the velocity — exactly what an MD engine stores. With Langevin
friction (γ > 0) the force contains white noise and has no value at an
instant, so such trajectories are written without forces (as from an MD
engine whose thermostat force is not stored).

Positions are wrapped into a cubic box, as an MD engine writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy.linalg import block_diag, expm

from ..elements import mass as element_mass
from ..units import AMU_A2_PS2_IN_EV, UNITS, kT_over_m
from .processes import trajectory_dataset, wrap

__all__ = [
    "EmbeddedKernel",
    "exponential_kernel",
    "oscillating_kernel",
    "gle_trajectory",
    "langevin_trajectory",
    "write_to_store",
    "gle_blocks",
    "CagedKernel",
    "caged_trajectory",
    "switching_trajectory",
]


@dataclass(frozen=True)
class EmbeddedKernel:
    r"""A memory kernel K(t) = cᵀ e^{−At} c (ps⁻²) and its Markovian embedding.

    ``coupling`` c (k,) in ps⁻¹ and ``drift`` A (k, k) in ps⁻¹; A + Aᵀ must be
    positive semi-definite (it is the noise covariance of ξ divided by σ²).
    """

    coupling: np.ndarray
    drift: np.ndarray
    name: str = "kernel"
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        c = np.atleast_1d(np.asarray(self.coupling, dtype=np.float64))
        a = np.atleast_2d(np.asarray(self.drift, dtype=np.float64))
        if a.shape != (c.size, c.size):
            raise ValueError(f"drift must be ({c.size}, {c.size}), got {a.shape}")
        if np.linalg.eigvalsh(a + a.T).min() < -1e-12:
            raise ValueError("A + Aᵀ must be positive semi-definite (it is the auxiliary noise covariance / σ²)")
        object.__setattr__(self, "coupling", c)
        object.__setattr__(self, "drift", a)

    def __call__(self, t) -> np.ndarray:
        """K(t) in ps⁻² at times ``t`` (ps, t ≥ 0)."""
        t = np.asarray(t, dtype=np.float64)
        vals = [self.coupling @ expm(-self.drift * ti) @ self.coupling for ti in t.ravel()]
        return np.asarray(vals).reshape(t.shape)

    def correlations(self, t, temperature_K: float, mass_u: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exact VACF C(t) = ⟨v(0)·v(t)⟩ (Å²/ps²) and its derivatives Ċ, C̈ of the embedded GLE.

        With X = (v, ξ) per component, Ẋ = M X + noise and the stationary
        covariance σ²·I, ⟨X(t)X(0)ᵀ⟩ = σ² e^{Mt}: C = 3σ²[e^{Mt}]₀₀, Ċ = 3σ²[M e^{Mt}]₀₀,
        C̈ = 3σ²[M² e^{Mt}]₀₀. The force correlations follow: ⟨v(0)·F(t)⟩/m = Ċ,
        ⟨F(0)·F(t)⟩/m² = −C̈.
        """
        k = self.coupling.size
        m = np.zeros((k + 1, k + 1))
        m[0, 1:] = self.coupling
        m[1:, 0] = -self.coupling
        m[1:, 1:] = -self.drift
        s2 = 3.0 * kT_over_m(temperature_K, mass_u)
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        out = np.empty((3, t.size))
        m2 = m @ m
        for i, ti in enumerate(t):
            e = expm(m * ti)
            out[:, i] = s2 * np.array([e[0, 0], (m @ e)[0, 0], (m2 @ e)[0, 0]])
        return out[0], out[1], out[2]

    @property
    def integral(self) -> float:
        """∫₀^∞ K dt = cᵀ A⁻¹ c in ps⁻¹."""
        return float(self.coupling @ np.linalg.solve(self.drift, self.coupling))

    def __add__(self, other: EmbeddedKernel) -> EmbeddedKernel:
        return EmbeddedKernel(np.concatenate([self.coupling, other.coupling]),
                              block_diag(self.drift, other.drift), f"{self.name}+{other.name}",
                              {**self.params, **other.params})


def exponential_kernel(k0: float, tau_ps: float) -> EmbeddedKernel:
    """K(t) = k0·exp(−t/τ) (k0 in ps⁻², τ in ps); ∫K = k0 τ."""
    return EmbeddedKernel([np.sqrt(k0)], [[1.0 / tau_ps]], "exponential", {"k0": k0, "tau_ps": tau_ps})


def oscillating_kernel(k0: float, tau_ps: float, omega_per_ps: float) -> EmbeddedKernel:
    """K(t) = k0·exp(−t/τ)·cos(ωt); ∫K = k0 λ/(λ² + ω²) with λ = 1/τ.

    Embedded with a damped rotating pair: A = λ·I + ω·[[0, −1], [1, 0]].
    """
    lam = 1.0 / tau_ps
    drift = [[lam, -omega_per_ps], [omega_per_ps, lam]]
    return EmbeddedKernel([np.sqrt(k0), 0.0], drift, "oscillating",
                          {"k0": k0, "tau_ps": tau_ps, "omega_per_ps": omega_per_ps})


def _van_loan(drift: np.ndarray, noise_cov: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact transition Φ and noise covariance Q of dX = M X dt + B dW over dt (Van Loan, 1978)."""
    n = drift.shape[0]
    big = np.zeros((2 * n, 2 * n))
    big[:n, :n] = -drift
    big[:n, n:] = noise_cov
    big[n:, n:] = drift.T
    e = expm(big * dt)
    phi = e[n:, n:].T
    q = phi @ e[:n, n:]
    return phi, 0.5 * (q + q.T)


def _matrix_sqrt(q: np.ndarray) -> np.ndarray:
    w, u = np.linalg.eigh(q)
    return u * np.sqrt(np.clip(w, 0.0, None))


def _simulate_blocks(kernel: EmbeddedKernel | None, gamma: float, *, n_atoms: int, n_frames: int, dt_ps: float,
                     temperature_K: float, mass_u: float, rng: np.random.Generator, block: int = 256,
                     omega0: float = 0.0):
    """Yield blocks of positions (unwrapped), velocities and the acceleration (Å/ps²), each (n, n_atoms, 3).

    The acceleration is the total systematic force per mass, −ω₀²x + c·ξ (ω₀ = 0: free particles).
    """
    c = np.zeros(0) if kernel is None else kernel.coupling
    a = np.zeros((0, 0)) if kernel is None else kernel.drift
    k = c.size
    d = 2 + k  # state (x, v, ξ_1..ξ_k) per Cartesian component
    m = np.zeros((d, d))
    m[0, 1] = 1.0
    m[1, 0] = -omega0**2
    m[1, 1] = -gamma
    m[1, 2:] = c
    m[2:, 1] = -c
    m[2:, 2:] = -a
    s2 = kT_over_m(temperature_K, mass_u)
    qc = np.zeros((d, d))
    qc[1, 1] = 2.0 * gamma * s2
    qc[2:, 2:] = s2 * (a + a.T)
    phi, q = _van_loan(m, qc, dt_ps)
    lq = _matrix_sqrt(q)
    rows = n_atoms * 3
    state = np.zeros((rows, d))
    state[:, 1:] = rng.standard_normal((rows, d - 1)) * np.sqrt(s2)  # the stationary law of (v, ξ)
    if omega0 > 0:  # and of x in the well: ⟨x²⟩ = σ²/ω₀²
        state[:, 0] = rng.standard_normal(rows) * np.sqrt(s2) / omega0
    for start in range(0, n_frames, block):
        n = min(block, n_frames - start)
        noise = rng.standard_normal((n, rows, d)) @ lq.T
        out = np.empty((n, rows, d))
        for i in range(n):
            if start + i:
                state = state @ phi.T + noise[i]
            out[i] = state
        shape = (n, n_atoms, 3)
        accel = out[..., 2:] @ c - omega0**2 * out[..., 0]
        yield out[..., 0].reshape(shape), out[..., 1].reshape(shape), accel.reshape(shape)


def _run(kernel: EmbeddedKernel | None, gamma: float, *, n_atoms: int, n_frames: int, dt_ps: float,
         temperature_K: float, species: str, box: float, seed: int, block: int = 1024, omega0: float = 0.0):
    """Yield (wrapped positions Å, velocities Å/ps, forces eV/Å) blocks in float64, seeded.

    The particles start at (free) or are bound to (ω₀ > 0: the centres of their wells) uniform random points.
    """
    rng = np.random.default_rng(seed)
    m = element_mass(species)
    origin = rng.uniform(0.0, box, size=(1, n_atoms, 3))
    cell = np.eye(3) * box
    for x, v, a in _simulate_blocks(kernel, gamma, n_atoms=n_atoms, n_frames=n_frames, dt_ps=dt_ps,
                                    temperature_K=temperature_K, mass_u=m, rng=rng, block=block,
                                    omega0=omega0):
        yield wrap(x + origin, cell), v, a * (m * AMU_A2_PS2_IN_EV)


def gle_blocks(kernel: EmbeddedKernel, *, n_atoms: int, n_frames: int, block_frames: int = 1024,
               dt_ps: float = 0.002, temperature_K: float = 750.0, species: str = "Ag", box: float = 20.0,
               seed: int = 0, dtype=np.float32):
    """Stream the run of :func:`gle_trajectory` (same seed, same numbers) as blocks of frames.

    Yields ``(positions, velocities, forces)`` arrays (n, n_atoms, 3): for
    runs too long to hold in memory, appended to the store block by block.
    """
    for x, v, f in _run(kernel, 0.0, n_atoms=n_atoms, n_frames=n_frames, dt_ps=dt_ps, temperature_K=temperature_K,
                        species=species, box=box, seed=seed, block=block_frames):
        yield x.astype(dtype), v.astype(dtype), f.astype(dtype)


def _whole(blocks) -> list[np.ndarray]:
    blocks = list(blocks)
    return [np.concatenate([b[i] for b in blocks]) for i in range(3)]


def _dataset(positions, velocities, forces, *, species: str, box: float, dt_ps: float, temperature_K: float,
             dtype, attrs: dict) -> xr.Dataset:
    ds = trajectory_dataset(positions, species, box, dt_ps, velocities=velocities, dtype=dtype,
                            attrs={"temperature_K": temperature_K, "engine": "agi_data.testing.gle", **attrs})
    if forces is not None:
        ds["forces"] = (("time", "atom", "xyz"), forces.astype(dtype), {"units": UNITS["forces"]})
    return ds


def write_to_store(store, run_id: str, ds: xr.Dataset, *, block_frames: int = 2048) -> xr.Dataset:
    """Write a generated trajectory into ``store`` (appends of ``block_frames``) and read it back (lazy)."""
    attrs = {k: v for k, v in ds.attrs.items() if k not in ("run_id", "timestep_ps")}
    cell = np.asarray(ds["cell"].values)
    with store.create_run(run_id, np.asarray(ds["species"].values), cell, ds.attrs["timestep_ps"],
                          attrs=attrs) as writer:
        for start in range(0, ds.sizes["time"], block_frames):
            block = ds.isel(time=slice(start, start + block_frames))
            writer.append(block["positions"].values,
                          velocities=block["velocities"].values if "velocities" in block else None,
                          forces=block["forces"].values if "forces" in block else None)
    return store.trajectory(run_id)


def gle_trajectory(kernel: EmbeddedKernel, *, n_atoms: int = 200, n_frames: int = 5000, dt_ps: float = 0.002,
                   temperature_K: float = 750.0, species: str = "Ag", box: float = 20.0, seed: int = 0,
                   forces: bool = True, dtype=np.float32) -> xr.Dataset:
    """Free particles under the GLE with ``kernel``, as a trajectory Dataset in the store schema.

    Forces are ``m c·ξ`` in eV/Å (the whole environment force: friction and
    noise), recorded at the instants of the velocities. The particles do not
    interact, so their diffusion coefficient is D = k_BT/(m ∫K) exactly.
    """
    x, v, f = _whole(_run(kernel, 0.0, n_atoms=n_atoms, n_frames=n_frames, dt_ps=dt_ps,
                          temperature_K=temperature_K, species=species, box=box, seed=seed))
    m = element_mass(species)
    attrs = {"ensemble": "GLE", "potential": f"GLE {kernel.name} kernel {kernel.params}",
             "kernel_integral_per_ps": kernel.integral,
             "diffusion_exact_A2_per_ps": kT_over_m(temperature_K, m) / kernel.integral}
    return _dataset(x, v, f if forces else None, species=species, box=box, dt_ps=dt_ps,
                    temperature_K=temperature_K, dtype=dtype, attrs=attrs)


def langevin_trajectory(gamma_per_ps: float, *, n_atoms: int = 200, n_frames: int = 5000, dt_ps: float = 0.001,
                        temperature_K: float = 750.0, species: str = "Ag", box: float = 20.0, seed: int = 0,
                        dtype=np.float32) -> xr.Dataset:
    """Free particles under Langevin dynamics with friction γ (ps⁻¹): the Markovian limit K = 2γδ(t).

    Written without forces (the Langevin force is white noise: it has no
    value at an instant). D = k_BT/(m γ).
    """
    x, v, _ = _whole(_run(None, gamma_per_ps, n_atoms=n_atoms, n_frames=n_frames, dt_ps=dt_ps,
                          temperature_K=temperature_K, species=species, box=box, seed=seed))
    m = element_mass(species)
    attrs = {"ensemble": "Langevin", "damping_fs": 1000.0 / gamma_per_ps,
             "potential": f"free particle, Langevin gamma={gamma_per_ps} 1/ps",
             "kernel_integral_per_ps": gamma_per_ps,
             "diffusion_exact_A2_per_ps": kT_over_m(temperature_K, m) / gamma_per_ps}
    return _dataset(x, v, None, species=species, box=box, dt_ps=dt_ps,
                    temperature_K=temperature_K, dtype=dtype, attrs=attrs)


# --------------------------------------------------------------------------------------------
# a caged particle: harmonic well plus bath


@dataclass(frozen=True)
class CagedKernel:
    r"""A particle in an isotropic harmonic well of frequency ω₀ (ps⁻¹) coupled to a bath ``bath``.

    Equations of motion (per Cartesian component, σ² = k_BT/m):

    .. math::

        \dot x = v,\qquad \dot v = -\omega_0^2 x + c\cdot\xi,\qquad
        \dot\xi = -A\xi - c\,v + B\eta_\xi .

    The force an MD engine would store is the **total** force
    :math:`F = m(-\omega_0^2 x + c\cdot\xi)` (well plus bath, no Langevin
    term). Writing :math:`x(t) = x(0) + \int_0^t v\,ds` turns the well into
    memory:

    .. math:: \dot v(t) = -\int_0^t \big[\omega_0^2 + K_{\rm bath}(t-s)\big] v(s)\,ds + R(t),
              \qquad R(t) = c\cdot\xi_{\rm noise}(t) - \omega_0^2 x(0),

    with :math:`\langle v(0)R(t)\rangle = 0` (x and v are uncorrelated at equal
    times) and :math:`\langle R(0)R(t)\rangle = \sigma^2 K(t)`. So the kernel
    of the Mori projection on v — the one both Volterra routes of
    :func:`agi_data.analysis.memory_kernel` return from (v, F) — is

    .. math:: K(t) = \omega_0^2 + K_{\rm bath}(t),

    which tends to ω₀², not 0: ∫K dt diverges and D = 0 (no Einstein check).
    The stationary law is Gaussian: ⟨x²⟩ = σ²/ω₀², ⟨v²⟩ = ⟨ξ_k²⟩ = σ², all
    independent at equal times.
    """

    bath: EmbeddedKernel
    omega0: float

    def __post_init__(self):
        if not self.omega0 > 0:
            raise ValueError(f"omega0 must be a positive angular frequency in ps⁻¹, got {self.omega0!r}")

    @property
    def name(self) -> str:
        return f"caged(ω0={self.omega0:g})+{self.bath.name}"

    def __call__(self, t) -> np.ndarray:
        """K(t) = ω₀² + K_bath(t) in ps⁻²."""
        return self.omega0**2 + self.bath(t)

    def correlations(self, t, temperature_K: float, mass_u: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact C(t) = ⟨v(0)·v(t)⟩ (Å²/ps²), Ċ and C̈, from the state (x, v, ξ).

        ⟨X(t)X(0)ᵀ⟩ = e^{Mt} Σ with Σ = σ² diag(1/ω₀², 1, 1…); C = 3[e^{Mt}Σ]_vv,
        Ċ = 3[M e^{Mt}Σ]_vv, C̈ = 3[M² e^{Mt}Σ]_vv. ⟨v(0)·F(t)⟩/m = Ċ and
        ⟨F(0)·F(t)⟩/m² = −C̈ for the total force.
        """
        c = self.bath.coupling
        k = c.size
        m = np.zeros((k + 2, k + 2))
        m[0, 1] = 1.0
        m[1, 0] = -self.omega0**2
        m[1, 2:] = c
        m[2:, 1] = -c
        m[2:, 2:] = -self.bath.drift
        s2 = kT_over_m(temperature_K, mass_u)
        sigma = np.diag([s2 / self.omega0**2] + [s2] * (k + 1))
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        out = np.empty((3, t.size))
        m2 = m @ m
        for i, ti in enumerate(t):
            e = expm(m * ti) @ sigma
            out[:, i] = 3.0 * np.array([e[1, 1], (m @ e)[1, 1], (m2 @ e)[1, 1]])
        return out[0], out[1], out[2]


def caged_trajectory(caged: CagedKernel, *, n_atoms: int = 200, n_frames: int = 5000, dt_ps: float = 0.002,
                     temperature_K: float = 750.0, species: str = "Ag", box: float = 20.0, seed: int = 0,
                     dtype=np.float32) -> xr.Dataset:
    """Particles each in its own harmonic well (centres uniform in the box) coupled to a bath.

    Sampled exactly (Van Loan) from the stationary law, so no equilibration.
    ``forces`` hold the total force m(−ω₀²x + c·ξ) in eV/Å at the instants of
    the velocities; ``ensemble`` is ``"nve"`` (no thermostat acts on the
    particle: the bath is part of the system). See :class:`CagedKernel` for
    the kernel the analyses must return.
    """
    x, v, f = _whole(_run(caged.bath, 0.0, n_atoms=n_atoms, n_frames=n_frames, dt_ps=dt_ps,
                          temperature_K=temperature_K, species=species, box=box, seed=seed, omega0=caged.omega0))
    attrs = {"ensemble": "nve", "potential": f"harmonic well omega0={caged.omega0} 1/ps + GLE bath "
                                              f"{caged.bath.name} {caged.bath.params}",
             "omega0_per_ps": caged.omega0}
    return _dataset(x, v, f, species=species, box=box, dt_ps=dt_ps, temperature_K=temperature_K, dtype=dtype,
                    attrs=attrs)


def switching_trajectory(kernel_a: EmbeddedKernel, kernel_b: EmbeddedKernel, *, switch_time_ps: float,
                         n_atoms: int = 200, n_frames: int = 5000, dt_ps: float = 0.002,
                         temperature_K: float = 750.0, species: str = "Ag", box: float = 20.0,
                         seed: int = 0, dtype=np.float32) -> tuple[xr.Dataset, xr.DataArray]:
    r"""Free GLE particles whose kernel switches between A and B as a telegraph process.

    Each particle carries a label (A or B) that flips with probability
    Δt/τ_s per frame (mean dwell ``switch_time_ps`` = τ_s); while labelled A
    it couples to the baths of ``kernel_a`` only, while B to those of
    ``kernel_b`` only (state (x, v, ξ_A, ξ_B); the uncoupled bath keeps its
    own Ornstein–Uhlenbeck motion). Both dynamics leave the Gaussian law
    σ²·I of (v, ξ_A, ξ_B) invariant, so the run stays stationary across
    switches. Each step is exact (Van Loan) for the label held over it.
    Forces are the total force m c_label·ξ at each frame.

    Returns ``(trajectory, labels)``, labels a boolean DataArray (atom, time),
    True where the particle is labelled A. A mask on A at the origins gives
    K_A back only while τ_s ≫ the kernels' decay times (the stationary
    sub-ensemble approximation of time-dependent masks).
    """
    rng = np.random.default_rng(seed)
    m_u = element_mass(species)
    s2 = kT_over_m(temperature_K, m_u)
    ka, kb = kernel_a.coupling.size, kernel_b.coupling.size
    d = 2 + ka + kb
    drift = block_diag(kernel_a.drift, kernel_b.drift)
    steps = []
    for coupling in (np.r_[kernel_a.coupling, np.zeros(kb)], np.r_[np.zeros(ka), kernel_b.coupling]):
        m = np.zeros((d, d))
        m[0, 1] = 1.0
        m[1, 2:] = coupling
        m[2:, 1] = -coupling
        m[2:, 2:] = -drift
        qc = np.zeros((d, d))
        qc[2:, 2:] = s2 * (drift + drift.T)
        phi, q = _van_loan(m, qc, dt_ps)
        steps.append((phi, _matrix_sqrt(q), coupling))
    rows = n_atoms * 3
    state = np.zeros((rows, d))
    state[:, 1:] = rng.standard_normal((rows, d - 1)) * np.sqrt(s2)
    label = rng.random(n_atoms) < 0.5  # True: A
    p_flip = dt_ps / switch_time_ps
    pos = np.empty((n_frames, n_atoms, 3))
    vel = np.empty_like(pos)
    acc = np.empty_like(pos)
    labels = np.empty((n_atoms, n_frames), dtype=bool)
    for i in range(n_frames):
        lab_rows = np.repeat(label, 3)
        if i:
            new = np.empty_like(state)
            for is_a, (phi, lq, _) in zip((True, False), steps):
                sel = lab_rows == is_a
                new[sel] = state[sel] @ phi.T + rng.standard_normal((int(sel.sum()), d)) @ lq.T
            state = new
        coupling = np.where(lab_rows[:, None], steps[0][2][None, :], steps[1][2][None, :])
        pos[i] = state[:, 0].reshape(n_atoms, 3)
        vel[i] = state[:, 1].reshape(n_atoms, 3)
        acc[i] = (state[:, 2:] * coupling).sum(-1).reshape(n_atoms, 3)
        labels[:, i] = label
        label = label ^ (rng.random(n_atoms) < p_flip)  # the label for the next step
    origin = rng.uniform(0.0, box, size=(1, n_atoms, 3))
    x = wrap(pos + origin, np.eye(3) * box)
    attrs = {"ensemble": "nve", "potential": f"GLE switching {kernel_a.name}/{kernel_b.name}, "
                                              f"tau_s={switch_time_ps} ps"}
    ds = _dataset(x, vel, acc * (m_u * AMU_A2_PS2_IN_EV), species=species, box=box, dt_ps=dt_ps,
                  temperature_K=temperature_K, dtype=dtype, attrs=attrs)
    return ds, xr.DataArray(labels, dims=("atom", "time"), name="label_a")
