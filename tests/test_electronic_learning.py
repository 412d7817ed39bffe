"""Learnability of the lone-pair model on a synthetic α-AgI run with a known, rotation-covariant rule.

The held-out frames are a time block the model never saw; the rotor
function and the dipoles it predicts there are compared with the ones the
rule put in (through the same analysis functions as DFT centres). The larger
documented run is ``benchmarks/electronic.py --part train`` (docs/electronic.md).
"""

from __future__ import annotations

import numpy as np

from agi_data.analysis.moments import lone_pair_moments, rotor_function_from_moments
from agi_data.electronic import fit_electronic_model
from agi_data.testing.electronic import synthetic_lone_pair_run

CI = {"epochs": 25, "channels": 8, "radial_hidden": 16, "batch_frames": 2}


def test_learns_the_rule_on_held_out_frames():
    train = synthetic_lone_pair_run(n=2, n_frames=30, seed=11)
    model = fit_electronic_model([train], seed=0, **CI)
    held_out = synthetic_lone_pair_run(n=2, n_frames=6, seed=12)  # frames of another run, never seen
    traj, wan = held_out
    truth = lone_pair_moments(traj, wan)
    pred = model.predict(traj).compute()
    err = [float(np.sqrt(((rotor_function_from_moments(pred, axis=a) - rotor_function_from_moments(truth, axis=a)) ** 2)
                         .mean())) for a in "xyz"]
    dip_rmse = float(np.sqrt(((pred["dipole"] - truth["dipole"]) ** 2).mean()))
    dip_std = float(truth["dipole"].std("frame").mean()) or float(truth["dipole"].std())
    assert max(err) < 0.02, (err, model.metrics)
    assert dip_rmse < 0.05 * float(truth["dipole"].std()), (dip_rmse, dip_std, model.metrics)
    assert model.metrics["rotor_rmse"] < 0.02  # the model's own time-block metric agrees
