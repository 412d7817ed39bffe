"""α-AgI builders: composition, sites, disorder, reproducibility, overlap check."""

from __future__ import annotations

import numpy as np
import pytest

from agi_data.analysis.pbc import distances, minimum_image
from agi_data.structures import (
    A_ALPHA_AGI,
    OverlappingAtomsError,
    alpha_agi,
    check_overlap,
    iodide_bcc,
    tetrahedral_sites,
)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_alpha_agi_composition_sites_and_distances(n):
    a = alpha_agi(n, seed=7)
    sym = np.array(a.get_chemical_symbols())
    assert (sym == "Ag").sum() == (sym == "I").sum() == 2 * n**3
    cell = a.cell.array
    np.testing.assert_allclose(cell, np.eye(3) * A_ALPHA_AGI * n)
    # iodides on the bcc lattice, Ag on tetrahedral (12d) sites, Ag–I at a√5/4, no two Ag closer than 3 Å
    io, ag = a.positions[sym == "I"], a.positions[sym == "Ag"]
    assert distances(io, iodide_bcc(n).positions, cell).min(axis=1).max() < 1e-9
    assert distances(ag, tetrahedral_sites(n), cell).min(axis=1).max() < 1e-9
    assert distances(ag, io, cell).min() == pytest.approx(A_ALPHA_AGI * np.sqrt(5) / 4)
    d_ag = distances(ag, ag, cell) + np.eye(len(ag)) * 99
    if n > 1:
        assert d_ag.min() >= 3.0 - 1e-9
    check_overlap(a, 2.0)


def test_seeded_disorder_is_reproducible_and_seed_dependent():
    a, b, c = alpha_agi(3, seed=1), alpha_agi(3, seed=1), alpha_agi(3, seed=2)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)
    r = alpha_agi(2, seed=1, rattle=0.1)
    shift = minimum_image(r.positions - alpha_agi(2, seed=1).positions, r.cell.array)
    assert np.std(shift) == pytest.approx(0.1, rel=0.25)  # Gaussian, σ = 0.1 Å per component


def test_overlap_and_bad_arguments():
    a = alpha_agi(1, seed=None)
    a.positions[2] = a.positions[0] + [0.0, 0.0, 0.4]
    with pytest.raises(OverlappingAtomsError, match="0.400 Å apart"):
        check_overlap(a, 1.0)
    with pytest.raises(ValueError, match="≥ 1"):
        alpha_agi(0)
    with pytest.raises(ValueError, match="> 0"):
        alpha_agi(1, a=-1.0)
