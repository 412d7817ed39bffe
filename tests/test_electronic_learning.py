"""Learnability on a case with a known answer: the lone-pair model learns the synthetic rule.

``synthetic_lone_pair_run`` places a regular tetrahedron of lone pairs on
every iodide, oriented by its Ag and I neighbour vectors, and stretches it
along the Ag vector (the dipole): an E(3)-covariant, permutation-invariant,
smooth rule with the isotropic rotor-function RMS ≈ 0.378 of real lone pairs
(docs/electronic.md, "Learnability"). A model trained on one synthetic run
must reproduce it on the held-out time block of that run and on an unseen
run: dipole RMSE < 5 % of its standard deviation and rotor-function RMSE,
pooled over x, y, z, < 0.05 (the goal of 0.02 is not reached yet and is
asserted by a strict xfail, so that reaching it fails the suite until the
bound is tightened). The truth on the unseen run is computed from the
centres by the DFT-path analysis (``rotor_function``), the prediction
through ``rotor_function_from_moments``: the test also crosses the two
bases. One CPU thread, deterministic for the seed.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from agi_data.analysis import iodide_dipoles, rotor_function
from agi_data.analysis.moments import rotor_function_from_moments
from agi_data.electronic import fit_electronic_model
from agi_data.testing.electronic import synthetic_lone_pair_run

#: the CI-size demonstration (docs/electronic.md, "Learnability": the learning curve and its timing)
LEARN = {"head": "tetrahedron", "epochs": 30, "channels": 16, "radial_hidden": 32, "n_layers": 1, "batch_frames": 4, "threads": 1}
#: what this configuration reaches (held-out ≈ 0.035, unseen ≈ 0.038; the isotropic RMS of M is 0.378)
ROTOR_REACHED = 0.05
#: the goal (not reached yet: see test_rotor_goal)
ROTOR_GOAL = 0.02
N_FRAMES = 100  # 32-ion frames: 80 trained on, the last 20 held out (16 iodides each)


@pytest.fixture(scope="module")
def learned():
    train = synthetic_lone_pair_run(n=2, n_frames=N_FRAMES, seed=0)
    return fit_electronic_model([train], seed=0, **LEARN)


def test_rule_has_the_physical_signal():
    """Regular tetrahedra: the RMS of M over frames, ions and axes is the isotropic 0.378, not a weak signal."""
    traj, wan = synthetic_lone_pair_run(n=2, n_frames=10, seed=7)
    m = np.stack([rotor_function(traj, wan, axis=a).values for a in "xyz"])
    assert abs(np.sqrt(np.mean(m**2)) - 0.378) < 0.03
    assert np.isfinite(m).all()


def test_learns_the_rule_on_the_held_out_block(learned):
    m = learned.metrics
    assert m["rotor_rms"] > 0.3  # the signal the errors are measured against
    assert m["rotor_rmse"] < ROTOR_REACHED, m
    assert m["dipole_rel"] < 0.05, m
    assert m["n_validation_frames"] == 20


@pytest.mark.xfail(strict=True, reason="held-out rotor RMSE ≈ 0.035 > 0.02: the learned frame vectors are not yet "
                   "accurate enough, most in environments where b⊥ is short (docs/electronic.md, Learnability)")
def test_rotor_goal(learned):
    assert learned.metrics["rotor_rmse"] < ROTOR_GOAL


def test_learns_the_rule_on_an_unseen_run(learned):
    traj, wan = synthetic_lone_pair_run(n=2, n_frames=8, seed=12)
    pred = learned.predict(traj).compute()
    err = np.concatenate([(rotor_function_from_moments(pred, axis=a) - rotor_function(traj, wan, axis=a)).values
                          for a in "xyz"])
    assert np.sqrt(np.mean(err**2)) < ROTOR_REACHED
    dip = iodide_dipoles(traj, wan)
    d_err = pred["dipole"] - dip.assign_coords(frame=pred["frame"].values)
    assert float(np.sqrt((d_err**2).mean())) < 0.05 * float(dip.std(("frame", "ion")).mean())
    xr.testing.assert_equal(pred["atom"], dip["atom"])
