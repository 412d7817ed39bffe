r"""Paddlewheel-conditioned selections of Ag⁺, and the significance of a difference between two kernels.

Next to rotating versus next to still iodides
---------------------------------------------
:func:`paddlewheel_mask` labels every (Ag⁺, frame) pair by how fast the
lone pairs of its **site's iodides** rotate. The site is the tetrahedral
site the Ag⁺ occupies, i.e. its ``n_neighbours`` (default 4) nearest
iodides on that frame (minimum image) — the definition of
:mod:`agi_data.analysis.hops`. Each iodide's lone-pair angular speed
:math:`\omega_j(t)` (rad/ps) comes from
:func:`~agi_data.analysis.lone_pair_angular_velocity` (Kabsch rotation of its
4 Wannier centres between neighbouring electronic frames), from lone-pair
moments (the rate of change of the ℓ = 3 orientation, ω = |dT₃/dt| / 2|T₃|,
for ``lone_pair_moments`` or a model's predictions, e.g.
``store.electronic(run_id)``: on every MD frame, so every frame is labelled),
or is given directly. The site's speed is

.. math:: s_i(t) = \frac{1}{n}\sum_{j\in{\rm site}_i(t)} \omega_j(t)\quad(\texttt{statistic="mean"})
          \quad\text{or}\quad \max_j \omega_j(t)\quad(\texttt{"max"}),

and with the thresholds :math:`s_{\rm lo} \le s_{\rm hi}` (default: the
**terciles** of s pooled over all Ag⁺ and frames, so each class holds a
third of the samples)

.. math:: \text{rotating}_i(t) = [s_i(t) \ge s_{\rm hi}],\qquad \text{still}_i(t) = [s_i(t) \le s_{\rm lo}].

The middle third is in neither class (a buffer against misclassification).
The masks are (atom, time) over the trajectory's frames, ready for
``memory_kernel(traj, "Ag", atoms=mask)``, which selects **time origins**: a
stationary sub-ensemble approximation that holds while a label lives longer
than the kernel decays (tested in the project's tests on labels switching on
a known time scale; a lone-pair rotation takes ~300 fs).

Electronic frames: a trajectory frame takes the label of the nearest
electronic frame (within half the electronic frame step); frames with no
electronic frame that near, or whose speed is missing (a bad Wannier frame,
the first and last frame of the central difference), are in neither class.
The electronic data must span the frames the mask is asked for (``frames=``,
default all): otherwise :class:`ConditioningError` names the gap.

Comparing two kernels
---------------------
:func:`compare_kernels` takes two kernels computed with
``memory_kernel(..., blocks=n)`` (jackknife replicates attached) and gives the
difference d(t), its standard error, and **global** tests over all lags —
many correlated lags exceed 3σ by chance, so per-lag flags are no test:

* ``p_global``: the lags are cut into ``windows`` (default 3) contiguous
  windows; the window integrals :math:`Y = \int_{\rm window}(K_a-K_b)\,dt`
  with their jackknife covariance :math:`\hat\Sigma` (over all lags inside,
  correlations included) give Hotelling's
  :math:`T^2 = Y^\top\hat\Sigma^{-1}Y`, referred to
  :math:`\frac{q\nu}{\nu-q+1}F(q, \nu-q+1)` with ν = n − 1 the degrees of
  freedom of a covariance from n blocks. A χ² over every lag would need the
  inverse of a lag × lag covariance estimated from n ≪ lags replicates
  (singular); a max-|z| statistic referred to draws with that covariance
  proved anti-conservative in the project's tests (p ≈ 10⁻⁴ for two runs of
  one process), so the test works on a few windows;
* ``p_friction``: the difference of the friction integrals
  :math:`\Delta\gamma = \int d\,dt` with its jackknife error (Student t with n − 1
  degrees of freedom).

Two kernels of the **same run** on the same blocks (e.g. rotating vs still
masks) are paired: replicate j of the difference deletes block j from both,
so their correlation is kept. Kernels of different runs are independent:
their covariances add.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy import stats

from ._neighbours import nearest
from ._schema import SchemaError, cell_per_frame, require, select_species
from .blocks import jackknife
from .transport import frame_step
from .wannier import lone_pair_angular_velocity

__all__ = ["ConditioningError", "paddlewheel_mask", "compare_kernels", "SITE_SPEED_STATISTICS"]

SITE_SPEED_STATISTICS = ("mean", "max")


class ConditioningError(SchemaError):
    """A conditioned selection or comparison asked of data that cannot support it."""


# --------------------------------------------------------------------------------------------
# paddlewheel masks
# --------------------------------------------------------------------------------------------

def _atoms_of(traj: xr.Dataset, species) -> np.ndarray:
    sel = select_species(traj, species)
    return np.flatnonzero(np.isin(traj["species"].values, sel["species"].values))


def _host_speeds(traj, electronic, host, host_atoms, wannier_kw) -> xr.DataArray:
    """Angular speed (frame, atom) over the host atoms, from a Wannier set or given directly."""
    if isinstance(electronic, xr.DataArray):
        w = electronic
        if "frame" not in w.dims or not ({"ion", "atom"} & set(w.dims)) or w.ndim != 2:
            raise ConditioningError(f"an angular-speed DataArray needs dims (frame, ion) or (frame, atom), "
                                    f"got {w.dims}")
        if "ion" in w.dims:
            if "atom" not in w.coords:
                if w.sizes["ion"] != host_atoms.size:
                    raise ConditioningError(f"the angular speeds have {w.sizes['ion']} ions, the run "
                                            f"{host_atoms.size} {host}: give an atom(ion) coordinate")
                w = w.assign_coords(atom=("ion", host_atoms))
            w = w.swap_dims(ion="atom")
        w = w.reindex(atom=host_atoms)
    elif isinstance(electronic, xr.Dataset):  # a Wannier set or moments: lone_pair_angular_velocity dispatches
        w = lone_pair_angular_velocity(traj, electronic, species=host, **wannier_kw).swap_dims(ion="atom")
    else:
        raise ConditioningError(
            "electronic must be the Wannier set of the run (store.wannier(run_id)), its lone-pair moments "
            "(store.electronic(run_id), lone_pair_moments) or a DataArray of lone-pair angular speeds (frame, ion); "
            f"got {type(electronic).__name__}")
    w = w.drop_vars([c for c in w.coords if c not in ("frame", "atom")]).transpose("frame", "atom")
    return w.compute() if hasattr(w, "compute") else w


def _frame_lookup(e_frames: np.ndarray, t_frames: np.ndarray) -> np.ndarray:
    """Index of the nearest electronic frame of each trajectory frame within half a step, else −1."""
    step = int(np.min(np.diff(e_frames))) if e_frames.size > 1 else 1
    pos = np.clip(np.searchsorted(e_frames, t_frames), 0, e_frames.size - 1)
    left = np.clip(pos - 1, 0, e_frames.size - 1)
    pick = np.where(np.abs(e_frames[left] - t_frames) <= np.abs(e_frames[pos] - t_frames), left, pos)
    return np.where(np.abs(e_frames[pick] - t_frames) <= step / 2, pick, -1)


def _site_speeds(traj, omega, want, a_atoms, h_atoms, k, statistic) -> np.ndarray:
    """Speed (F, Na) of each ion's site (its k nearest hosts) on the wanted frames; NaN where one is unknown.

    ``omega``: host angular speeds (F, n_hosts) on those frames, hosts in the order of ``h_atoms``.
    """
    pos = np.asarray(traj["positions"].isel(time=want).values, dtype=np.float64)
    cells = np.asarray(cell_per_frame(traj).isel(time=want).values, dtype=np.float64)
    site, _ = nearest(pos[:, a_atoms], pos[:, h_atoms], cells, k=k)  # (F, Na, k), indices into h_atoms
    per = np.take_along_axis(omega[:, None, :], site.astype(np.int64), axis=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = per.mean(axis=2) if statistic == "mean" else per.max(axis=2)
    s[~np.isfinite(per).all(axis=2)] = np.nan
    return s


def _thresholds(s: np.ndarray, thresholds) -> tuple[float, float]:
    """(low, high) in rad/ps: the terciles of the known site speeds ``s``, or the pair given."""
    if s.size == 0:
        raise ConditioningError("no (ion, frame) has a known site speed: every electronic frame was bad or "
                                "lacked a neighbour for the central difference")
    if isinstance(thresholds, str):
        if thresholds != "terciles":
            raise ConditioningError(f"thresholds must be 'terciles' or (lo, hi) in rad/ps, got {thresholds!r}")
        lo, hi = np.quantile(s, [1 / 3, 2 / 3])
        return float(lo), float(hi)
    lo, hi = (float(x) for x in thresholds)
    if not lo <= hi:
        raise ConditioningError(f"thresholds (lo, hi) need lo ≤ hi, got {thresholds!r}")
    return lo, hi


def paddlewheel_mask(traj: xr.Dataset, electronic, *, species: str = "Ag", host: str = "I",
                     n_neighbours: int = 4, statistic: str = "mean", thresholds="terciles",
                     frames=None, min_coverage: float = 0.5, cutoff: float = 1.2, expected=None,
                     on_bad: str = "mask") -> xr.Dataset:
    r"""Masks of the ``species`` ions next to rotating and next to still ``host`` lone pairs.

    See the module docstring for the definitions (site = the
    ``n_neighbours`` nearest host ions per frame; site speed = ``statistic``
    of their lone-pair angular speeds; classes by ``thresholds``).

    Parameters
    ----------
    traj
        trajectory in the store schema.
    electronic
        the run's Wannier set (as ``store.wannier(run_id)`` gives; Kabsch
        angular speed), lone-pair moments (``store.electronic(run_id)`` or
        ``lone_pair_moments``; ℓ = 3 rate-of-change speed), or a DataArray of
        host angular speeds in rad/ps over (frame, ion) or (frame, atom) with
        integer trajectory frame indices.
    thresholds
        ``"terciles"`` (default) or ``(lo, hi)`` in rad/ps.
    frames
        trajectory frames the mask must cover (a slice or indices; default
        all); the electronic data must span them.
    min_coverage, cutoff, expected, on_bad
        passed to :func:`~agi_data.analysis.lone_pair_angular_velocity`.

    Returns
    -------
    xarray.Dataset over (atom, time) — the ``species`` atoms (coordinate
    ``index``: their atom indices in ``traj``) and every trajectory frame —
    with ``rotating`` and ``still`` (bool), ``site_speed`` (rad/ps, NaN where
    unknown); attrs ``threshold_low``/``threshold_high`` (rad/ps),
    ``definition``, ``labelled_fraction``.
    """
    require(traj, "positions")
    if statistic not in SITE_SPEED_STATISTICS:
        raise ConditioningError(f"statistic must be one of {SITE_SPEED_STATISTICS}, got {statistic!r}")
    if int(n_neighbours) < 1:
        raise ConditioningError(f"n_neighbours must be ≥ 1, got {n_neighbours!r}")
    a_atoms, h_atoms = _atoms_of(traj, species), _atoms_of(traj, host)
    if h_atoms.size < n_neighbours:
        raise ConditioningError(f"a site needs {n_neighbours} {host} ions; the run has {h_atoms.size}")
    n_time = traj.sizes["time"]
    want = np.arange(n_time)[frames] if isinstance(frames, slice) else \
        (np.arange(n_time) if frames is None else np.asarray(frames, dtype=np.int64))
    wkw = dict(min_coverage=min_coverage, cutoff=cutoff, expected=expected, on_bad=on_bad)
    omega = _host_speeds(traj, electronic, host, h_atoms, wkw)
    e_frames = np.asarray(omega["frame"].values, dtype=np.int64)
    if e_frames.size == 0:
        raise ConditioningError("the electronic data holds no frame")
    step = int(np.min(np.diff(e_frames))) if e_frames.size > 1 else 1
    lookup = _frame_lookup(e_frames, want)
    if (lookup < 0).any():
        gap = want[lookup < 0]
        raise ConditioningError(
            f"the electronic data covers frames {e_frames[0]}..{e_frames[-1]} (step {step}) but the mask needs "
            f"frames {want[0]}..{want[-1]}: frames {gap[:5].tolist()}{'…' if gap.size > 5 else ''} "
            f"({gap.size} in all) have no electronic frame within {step / 2:g} frames. Compute the electronic state "
            "on those frames, or pass frames= the part of the run it covers")
    s = _site_speeds(traj, np.asarray(omega.values, dtype=np.float64)[lookup], want, a_atoms, h_atoms,
                     int(n_neighbours), statistic)
    finite = np.isfinite(s)
    lo, hi = _thresholds(s[finite], thresholds)
    full = np.full((a_atoms.size, n_time), np.nan)
    full[:, want] = s.T
    with np.errstate(invalid="ignore"):
        rotating, still = full >= hi, full <= lo
    coords = {"index": ("atom", a_atoms), "time": traj["time"].values}
    out = xr.Dataset({
        "rotating": (("atom", "time"), rotating, {"long_name": f"{species} next to rotating {host} lone pairs"}),
        "still": (("atom", "time"), still, {"long_name": f"{species} next to still {host} lone pairs"}),
        "site_speed": (("atom", "time"), full, {"units": "rad/ps",
                                                "long_name": f"{statistic} lone-pair angular speed of the site"}),
    }, coords=coords)
    out["time"].attrs["units"] = "ps"
    return out.assign_attrs(
        species=species, host=host, n_neighbours=int(n_neighbours), statistic=statistic,
        threshold_low=float(lo), threshold_high=float(hi), thresholds_from=str(thresholds) if isinstance(
            thresholds, str) else "given", threshold_units="rad/ps",
        definition=f"site = the {n_neighbours} nearest {host} per frame; speed = {statistic} lone-pair angular "
                   f"speed of the site; rotating: speed ≥ high, still: speed ≤ low",
        labelled_fraction=float(finite.mean()), electronic_frame_step=step, timestep_ps=frame_step(traj))


# --------------------------------------------------------------------------------------------
# comparing two kernels
# --------------------------------------------------------------------------------------------

def _replicates(k: xr.DataArray, name: str) -> np.ndarray:
    if not isinstance(k, xr.DataArray) or "lag" not in k.dims:
        raise ConditioningError(f"{name} must be a memory kernel DataArray over 'lag'")
    reps = k.attrs.get("block_replicates")
    if reps is None:
        raise ConditioningError(f"{name} carries no jackknife replicates: compute it with "
                                "memory_kernel(..., blocks=n) (n ≥ 8 blocks, each ≥ max_lag_ps long)")
    return np.asarray(reps, dtype=np.float64)


def _windows(n: int, q: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges (q + 1,) of q contiguous lag windows and the (q, n) trapezoid weights of their integrals (ps)."""
    cuts = np.linspace(0, n - 1, q + 1).round().astype(int)
    wmat = np.zeros((q, n))
    for i in range(q):
        wmat[i, cuts[i]:cuts[i + 1] + 1] = dt
        wmat[i, cuts[i]] = wmat[i, cuts[i + 1]] = 0.5 * dt
    return cuts, wmat


def compare_kernels(a: xr.DataArray, b: xr.DataArray, *, max_lag_ps: float | None = None,
                    paired: bool | None = None, windows: int = 3) -> xr.Dataset:
    r"""Difference a − b of two memory kernels, its error, and global tests over all lags.

    Both kernels come from ``memory_kernel(..., blocks=n)``. Kernels of the
    same run with the same blocks are compared **paired** (one jackknife of
    the difference); others as independent (covariances add). ``paired``:
    None (default) decides from the attrs (the same ``run_fingerprint``, a
    digest of the run's first frame, and the same ``block_edges_frames``); True/False forces it (True needs the same
    number of blocks). See the module docstring for the tests.

    Returns
    -------
    xarray.Dataset over ``lag`` (ps): ``difference`` and ``stderr`` (ps⁻²),
    ``z`` (= difference/stderr, per lag: descriptive only); over ``window``:
    ``window_integral`` and its ``window_integral_stderr`` (ps⁻¹); attrs
    ``p_global`` (the global test over all lags), ``hotelling_t2``,
    ``n_windows``, ``dof``, ``friction_difference`` (ps⁻¹, ∫(a − b)dt),
    ``friction_difference_stderr``, ``p_friction``, ``max_abs_z``,
    ``n_lags_beyond_3sigma`` (descriptive), ``paired``, ``n_blocks``, ``test``.
    ``windows``: how many lag windows the global test uses (at most n − 2
    for n blocks).
    """
    ra, rb = _replicates(a, "a"), _replicates(b, "b")
    dt_a, dt_b = float(a.attrs.get("timestep_ps", np.nan)), float(b.attrs.get("timestep_ps", np.nan))
    if not np.isclose(dt_a, dt_b, rtol=1e-6):
        raise ConditioningError(f"the kernels have different lag steps ({dt_a:g} and {dt_b:g} ps): compare kernels "
                                "on the same frame grid")
    n = min(a.sizes["lag"], b.sizes["lag"])
    if max_lag_ps is not None:
        n = min(n, int(np.floor(float(max_lag_ps) / dt_a + 1e-9)) + 1)
    if n < 2:
        raise ConditioningError("fewer than 2 common lags to compare")
    ka, kb = np.asarray(a.values[:n], dtype=np.float64), np.asarray(b.values[:n], dtype=np.float64)
    ra, rb = ra[:, :n], rb[:, :n]
    if not (np.isfinite(ra).all() and np.isfinite(rb).all()):
        raise ConditioningError("a jackknife replicate is unstable (NaN) within the compared lags: pass a shorter "
                                "max_lag_ps")
    same_blocks = list(a.attrs.get("block_edges_frames", [])) == list(b.attrs.get("block_edges_frames", [None]))
    if paired is None:
        paired = bool(a.attrs.get("run_fingerprint")) and same_blocks and \
            a.attrs.get("run_fingerprint") == b.attrs.get("run_fingerprint")
    elif paired and (ra.shape[0] != rb.shape[0] or not same_blocks):
        raise ConditioningError("paired=True needs both kernels on the same blocks of the same run "
                                f"(blocks {a.attrs.get('block_edges_frames')} vs {b.attrs.get('block_edges_frames')})")
    d = ka - kb
    reps = [ra - rb] if paired else [ra, -rb]
    cov = sum(jackknife(r)[1] for r in reps)
    se = np.sqrt(np.diag(cov))
    if not (se > 0).all():
        raise ConditioningError("the difference has zero error at some lag (identical replicates): nothing to test")
    z = d / se
    nu = min(r.shape[0] for r in reps) - 1  # degrees of freedom of the jackknife covariance
    q = max(1, min(int(windows), nu - 1, n))
    cuts, wmat = _windows(n, q, dt_a)
    y, cy = wmat @ d, wmat @ cov @ wmat.T
    t2 = float(y @ np.linalg.solve(cy, y))
    p_global = float(stats.f.sf((nu - q + 1) / (q * nu) * t2, q, nu - q + 1))  # Hotelling T² → F
    w = wmat.sum(axis=0)  # the whole integral
    gamma_d = float(w @ d)
    gamma_se = float(np.sqrt(w @ cov @ w))
    p_gamma = float(2 * stats.t.sf(abs(gamma_d) / gamma_se, nu))
    lag = a["lag"].isel(lag=slice(0, n))
    ds = xr.Dataset({"difference": ("lag", d, {"units": "ps^-2", "long_name": "K_a − K_b"}),
                     "stderr": ("lag", se, {"units": "ps^-2", "long_name": "jackknife standard error of K_a − K_b"}),
                     "z": ("lag", z, {"long_name": "difference / stderr (per lag: not a test)"})},
                    coords={"lag": lag})
    ds["window_integral"] = ("window", y, {"units": "ps^-1", "long_name": "∫(K_a − K_b)dt over each lag window"})
    ds["window_integral_stderr"] = ("window", np.sqrt(np.diag(cy)), {"units": "ps^-1"})
    ds = ds.assign_coords(window_start=("window", lag.values[cuts[:-1]], {"units": "ps"}),
                          window_end=("window", lag.values[cuts[1:]], {"units": "ps"}))
    return ds.assign_attrs(
        p_global=p_global, hotelling_t2=t2, n_windows=int(q), dof=int(nu),
        friction_difference=gamma_d, friction_difference_stderr=gamma_se, friction_difference_units="ps^-1",
        p_friction=p_gamma, max_abs_z=float(np.abs(z).max()), n_lags_beyond_3sigma=int((np.abs(z) > 3).sum()),
        paired=bool(paired), n_blocks=[int(r.shape[0]) for r in (ra, rb)],
        test=f"Hotelling T² of the {q} lag-window integrals of K_a − K_b with their jackknife covariance, "
             f"F({q}, {nu - q + 1}) (p_global); ∫(K_a − K_b)dt against Student t, {nu} dof (p_friction)")
