"""Names the store's layers share: the branch, the groups, the per-frame variables, the reserved attrs."""

from __future__ import annotations

#: the one branch of every run's repository
BRANCH = "main"
#: group of a run's Wannier centres
WANNIER_GROUP = "wannier"

#: trajectory variables that may be stored per frame, with their dimensions
FRAME_VARIABLES = {
    "positions": ("time", "atom", "xyz"),
    "velocities": ("time", "atom", "xyz"),
    "forces": ("time", "atom", "xyz"),
    "energies": ("time",),
    "cell": ("time", "vec", "xyz"),
}

#: run attributes the store writes and reads itself: callers may not set them
RESERVED_ATTRS = frozenset({
    "run_id", "timestep_ps", "time_origin_ps", "n_atoms", "created", "agi_data_version", "layout",
    "default_cell", "units", "store_version",
})
