r"""The e3nn basis of the network and the project's basis of the moments, and the map between them.

The network (e3nn) emits its ``1x1o + 1x3o`` outputs in e3nn's real basis;
the analyses (:mod:`agi_data.analysis.moments`) use the real orthonormal
harmonics of their module table with ℓ = 1 as (x, y, z). e3nn has changed
its ℓ = 1 order between releases ((y, z, x) before 0.5, (x, y, z) since) and
its ℓ = 3 basis is an orthogonal mixture of the table's, so the map is not
written down by hand: it is the exact least-squares solution of
Y_project(û) = Y_e3nn(û) · B on fixed directions, computed once per process
from e3nn's own ``spherical_harmonics`` (``normalization="integral"``: both
sides orthonormal, so B is orthogonal). Targets enter the network as
T · Bᵀ and outputs leave it as out · B; a "component"-normalised basis
(Σₘ|Yₘ|² = 2ℓ + 1, nequip's choice) would differ by √(4π) and is never used.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from e3nn import o3

from ..analysis.moments import real_harmonics_l3

__all__ = ["to_project", "to_e3nn", "l1_basis", "l3_basis"]

_PROBE = np.random.default_rng(20240121).normal(size=(32, 3))  # generic directions: full rank for ℓ ≤ 3


def _fit(l: int, project) -> np.ndarray:
    u = torch.as_tensor(_PROBE, dtype=torch.float64)
    e3 = o3.spherical_harmonics(l, u, normalize=True, normalization="integral").numpy()
    b, res, *_ = np.linalg.lstsq(e3, project(_PROBE), rcond=None)
    if not np.allclose(e3 @ b, project(_PROBE), atol=1e-10):
        raise RuntimeError(f"e3nn's l={l} harmonics do not span the project's basis (e3nn changed?)")
    return b


@cache
def l1_basis() -> np.ndarray:
    """B₁ (3×3): xyz = e3nn ℓ = 1 · B₁ (ℓ = 1 orthonormal harmonics are √(3/4π) û)."""
    return _fit(1, lambda u: np.sqrt(3 / (4 * np.pi)) * u / np.linalg.norm(u, axis=-1, keepdims=True))


@cache
def l3_basis() -> np.ndarray:
    """B₃ (7×7), orthogonal: project ℓ = 3 = e3nn ℓ = 3 · B₃."""
    return _fit(3, real_harmonics_l3)


def to_project(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split network outputs (..., 10) in e3nn's basis into (dipole (..., 3) xyz, octupole (..., 7))."""
    return out[..., :3] @ l1_basis(), out[..., 3:] @ l3_basis()


def to_e3nn(dipole: np.ndarray, octupole: np.ndarray) -> np.ndarray:
    """Targets in the project's basis → (..., 10) in the network's ``1x1o + 1x3o`` basis."""
    return np.concatenate([dipole @ l1_basis().T, octupole @ l3_basis().T], axis=-1)
