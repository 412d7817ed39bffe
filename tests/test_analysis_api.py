"""The analysis package as a user meets it: the accessor, help(), errors, argument names, honest attrs."""

from __future__ import annotations

import inspect
import pydoc
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

import agi_data
import agi_data.analysis as an
from agi_data.analysis._common import renamed_arguments
from agi_data.analysis.errors import AnalysisError
from agi_data.testing import random_walk, trajectory_dataset
from agi_data.testing.paddlewheel import agi_lattice_with_centres

#: every public function that takes a trajectory or a result first (msd_covariance takes lag numbers)
PUBLIC_FUNCTIONS = sorted(n for n in an.__all__ if inspect.isfunction(getattr(an, n)) and n != "msd_covariance")


def _fresh_python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# ------------------------------------------------------------------------------ the accessor

def test_import_agi_data_is_cheap_and_registers_the_accessor_when_xarray_loads():
    out = _fresh_python(
        "import sys, agi_data\n"
        "print('xarray' in sys.modules, 'agi_data.analysis' in sys.modules)\n"
        "import xarray as xr\n"
        "print('agi' in vars(xr.Dataset), 'agi' in vars(xr.DataArray), 'agi_data.analysis' in sys.modules)\n"
        "xr.Dataset().agi\n"
        "print('agi_data.analysis' in sys.modules)\n")
    assert out.split() == ["False", "False", "True", "True", "False", "True"]
    # xarray imported first: registered at `import agi_data`
    out = _fresh_python("import xarray as xr, agi_data\nprint(type(xr.Dataset().agi).__name__)")
    assert out.strip() == "AgiAccessor"


def test_accessor_lists_every_analysis_with_its_docstring_and_signature():
    ds = random_walk(n_atoms=4, n_frames=20)
    names = [n for n in dir(ds.agi) if not n.startswith("_")]
    assert sorted(names) == PUBLIC_FUNCTIONS
    page = pydoc.render_doc(ds.agi, renderer=pydoc.plaintext)
    assert "msd(self, species: 'Species' = None, *, per_atom: 'bool' = False, max_lag_ps" in page
    assert "Mean-squared displacement over all time origins" in page
    assert "hop_conditioned_average(self, wannier" in page
    # the method is the function, bound to the object
    np.testing.assert_array_equal(ds.agi.msd("Ag").values, an.msd(ds, "Ag").values)
    m = ds.agi.msd("Ag")
    assert float(m.agi.diffusion_coefficient(fit_range=(0.02, 0.1))["D"]) > 0


def test_help_of_the_package_lists_the_functions_and_errors():
    page = pydoc.render_doc(an, renderer=pydoc.plaintext)
    for name in ("msd(traj", "rdf(traj", "hop_conditioned_average(traj", "memory_kernel(traj",
                 "class GLEInputError", "class KernelInstabilityError", "class AnalysisError"):
        assert name in page, name


def test_every_error_is_an_analysis_error_and_keeps_its_old_bases():
    for name in ("SchemaError", "TransportError", "StructureError", "HopError", "WannierError", "GLEInputError",
                 "KernelInstabilityError"):
        cls = getattr(an, name)
        assert issubclass(cls, AnalysisError) and issubclass(cls, ValueError), name
    assert issubclass(an.HopError, an.SchemaError) and issubclass(an.WannierError, an.SchemaError)
    from agi_data.analysis.gle import GLEInputError, KernelInstabilityError
    from agi_data.analysis.transport import TransportError

    assert GLEInputError is an.GLEInputError and KernelInstabilityError is an.KernelInstabilityError
    assert TransportError is an.TransportError
    with pytest.raises(AnalysisError, match="not in the Dataset"):
        an.msd(random_walk(n_atoms=2, n_frames=10), "I")


# ------------------------------------------------------------------------------ one argument vocabulary

def test_renamed_arguments_warns_forwards_and_refuses_both():
    @renamed_arguments(old="new")
    def f(x, *, new=1):
        return x + new

    with pytest.warns(DeprecationWarning, match=r"f\(old=...\) is deprecated.*use f\(new=...\)"):
        assert f(1, old=5) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1, new=5) == 6
    with pytest.raises(TypeError, match="both 'old'"):
        f(1, old=1, new=2)
    assert inspect.signature(f).parameters.keys() == {"x", "new"}


def test_old_argument_names_of_the_analyses_still_work_with_a_warning():
    ds = random_walk(n_atoms=4, n_frames=60, seed=3)
    new = an.msd(ds, "Ag", max_lag_ps=0.2)
    with pytest.warns(DeprecationWarning, match="max_lag_ps"):
        old = an.msd(ds=ds, species="Ag", max_lag=0.2)
    xr.testing.assert_identical(new, old)
    ag = ds.assign(velocities=ds.positions * 0 + 1.0)
    with pytest.warns(DeprecationWarning):
        xr.testing.assert_identical(an.vacf(ag, max_lag=0.1), an.vacf(ag, max_lag_ps=0.1))
    with pytest.warns(DeprecationWarning):
        an.rdf(ds=ds, a="Ag", b="Ag", r_max=5.0, dr=0.5)
    for func in (an.msd, an.vacf, an.cage_correlation, an.rotor_correlation, an.dipole_correlation,
                 an.memory_kernel, an.gle_correlations):
        assert "max_lag_ps" in inspect.signature(func).parameters, func.__name__
    for func in (an.unwrap, an.msd, an.vacf, an.rdf, an.van_hove_self, an.van_hove_distinct, an.hops,
                 an.cage_correlation, an.assign_wannier, an.memory_kernel, an.hop_conditioned_average):
        assert next(iter(inspect.signature(func).parameters)) == "traj", func.__name__


# ------------------------------------------------------------------------------ silent or misleading results

def test_diffusion_coefficient_does_not_copy_the_msd_labels_onto_D():
    m = an.msd(random_walk(n_atoms=16, n_frames=200, D=0.5, seed=4), "Ag")
    d = an.diffusion_coefficient(m, fit_range=(0.1, 1.0))
    assert d["D"].attrs == {"units": "Å^2/ps", "long_name": "self-diffusion coefficient"}
    assert d["D_stderr"].attrs["units"] == "Å^2/ps" and "method" not in d["D_stderr"].attrs
    assert d.attrs["method"].startswith("generalised least squares")


def test_where_drop_gives_a_clear_error():
    ds = random_walk(n_atoms=6, n_frames=30, species=["Ag", "I"] * 3)
    masked = ds.where(ds.symbol == "Ag", drop=True)
    for call in (lambda: an.msd(masked, "Ag"), lambda: an.rdf(masked, "Ag", "Ag", r_max=5.0, dr=0.5),
                 lambda: an.unwrap(masked)):
        with pytest.raises(an.SchemaError, match=r"Dataset.where\(cond\).*isel\(atom="):
            call()
    # the remedy the message gives works
    picked = ds.isel(atom=(ds.symbol == "Ag").values)
    xr.testing.assert_allclose(an.msd(picked), an.msd(ds, "Ag"))


def test_timestep_is_reported_rounded():
    ds = random_walk(n_atoms=4, n_frames=200, dt=0.005, seed=5)
    every_other = ds.isel(time=slice(None, None, 2))  # time steps of 0.010000000000000009 ps in float64
    assert np.median(np.diff(every_other.time.values)) != 0.01
    m = an.msd(every_other, "Ag")
    assert m.attrs["timestep_ps"] == 0.01
    np.testing.assert_array_equal(m.lag.values, np.arange(m.sizes["lag"]) * 0.01)
    assert an.hops(agi_lattice_with_centres(n=2, n_frames=40, dt_ps=0.005)[0].isel(time=slice(None, None, 2)),
                   min_dwell_ps=0.02).attrs["timestep_ps"] == 0.01


def test_wannier_set_of_another_run_is_refused():
    traj, wan = agi_lattice_with_centres(n=1, n_frames=6, dt_ps=0.01, wannier_every=1)
    traj = traj.assign_attrs(run_id="run-a")
    an.assign_wannier(traj, wan.assign_attrs(run_id="run-a"))  # its own run: accepted
    with pytest.raises(an.WannierError, match="belongs to run 'run-b'.*store.wannier\\('run-a'\\)"):
        an.assign_wannier(traj, wan.assign_attrs(run_id="run-b"))
    with pytest.raises(an.WannierError, match="belongs to run"):
        an.rotor_correlation(traj, wan.assign_attrs(run_id="run-b"))


def test_schema_of_synthetic_trajectories_is_the_one_checked():
    ds = trajectory_dataset(np.zeros((3, 2, 3)), ["Ag", "I"], 10.0, 0.01)
    an.unwrap(ds)  # the helpers' schema accepts what agi_data.testing writes
    assert agi_data.__version__
