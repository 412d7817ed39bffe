r"""The E(3)-equivariant network: each ion's environment → its ``1x1o + 1x3o`` outputs.

Architecture (a compact MACE-style message-passing network built from e3nn
parts; Batatia et al., NeurIPS 35 (2022); Geiger & Smidt, arXiv:2207.09453):

1. species one-hot → ``C x 0e`` node features h⁰;
2. ``n_layers`` interaction blocks, each
   a. a neighbour density m_i = Σ_j R(r_ij, s_j) Y(r̂_ij) / √⟨n_neighbours⟩
      over every neighbour j within the cutoff, periodic images included,
      with real spherical harmonics Y up to ℓ = 3 and channel weights R from
      an MLP of a Bessel basis (times a smooth polynomial envelope, so
      outputs are continuous as atoms cross the cutoff) and of the
      neighbour's invariant features s_j from the block before; plus a
      linear map of the ion's own features h_i;
   b. a channel-wise product basis p = L₁(m) + L₂(m ⊗ m) + L₃((m ⊗ m) ⊗ m)
      (body order 4 per layer: enough to build (v₁ ⊗ v₂ ⊗ v₃)_{ℓ=3} from
      three different vector features, which a rule that orients a
      tetrahedron by its environment needs);
   c. a gated non-linearity (SiLU on scalars, sigmoid gates on ℓ > 0) and a
      linear residual connection;
3. a linear read-out of every block (of its output features and of its
   neighbour density m) to ``1x1o + 1x3o``, summed;
4. with ``head="tetrahedron"`` (the default of the trained model) the
   read-out also gives two vectors a, b per ion, and the ℓ = 3 output is
   the moment Σ_k Y₃(û_k) of the regular tetrahedron with a corner along a
   and a mirror plane containing b (:class:`TetrahedronHead`) plus the linear
   ℓ = 3 read-out as a correction for distorted tetrahedra. Every
   orientation of a regular tetrahedron has this form, so the head limits
   nothing; it puts the non-linear map from a frame to T₃ (normalising a,
   orthogonalising b, the cubic harmonics of the corners) into the
   architecture instead of asking products of features to learn it.

Hidden irreps are ``C x (0e + 1o + 2e + 3o)``; every operation is
equivariant under rotations, inversion, translations and permutations,
which the tests check rather than assume.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate

from .basis import l1_basis

__all__ = ["ElectronicNetwork", "OUTPUT_IRREPS", "HEADS", "TetrahedronHead"]

#: dipole (ℓ = 1, odd) and lone-pair orientation (ℓ = 3, odd), in e3nn's basis
OUTPUT_IRREPS = o3.Irreps("1x1o + 1x3o")
_SH = o3.Irreps.spherical_harmonics(3)  # 0e + 1o + 2e + 3o
#: output heads: "linear" (read-out only) or "tetrahedron" (a regular tetrahedron from two vectors, plus the read-out)
HEADS = ("linear", "tetrahedron")


def _hidden(channels: int) -> o3.Irreps:
    return o3.Irreps(f"{channels}x0e + {channels}x1o + {channels}x2e + {channels}x3o")


def envelope(r: torch.Tensor, cutoff: float) -> torch.Tensor:
    """The p = 6 polynomial envelope 1 − 28x⁶ + 48x⁷ − 21x⁸ (x = r/r_c): 1 at 0, zero with two derivatives at r_c."""
    x = r / cutoff
    env = 1 - 28 * x**6 + 48 * x**7 - 21 * x**8
    return torch.where(x < 1, env, torch.zeros_like(env))


def bessel(r: torch.Tensor, cutoff: float, n_basis: int) -> torch.Tensor:
    """Bessel radial basis √(2/r_c) sin(nπr/r_c)/r, n = 1…n_basis."""
    n = torch.arange(1, n_basis + 1, dtype=r.dtype, device=r.device)
    return math.sqrt(2.0 / cutoff) * torch.sin(n * math.pi * r[:, None] / cutoff) / r[:, None]


class _Density(torch.nn.Module):
    r"""A_i^{ℓc} = Σ_j R_{ℓc}(r_ij, s_j) Y_ℓ(r̂_ij): the neighbour density projected on Y_ℓ, per channel.

    The radial weights come from an MLP of the Bessel basis of r_ij and the
    scalar (invariant) features s_j of the neighbour from the previous block,
    so the second block sees the neighbours' own environments (many-body)
    while each edge costs only C·16 multiplications.
    """

    def __init__(self, n_scalars: int, channels: int, n_basis: int, radial_hidden: int):
        super().__init__()
        self.channels = channels
        self.radial = FullyConnectedNet([n_basis + n_scalars, radial_hidden, radial_hidden, 4 * channels],
                                        torch.nn.functional.silu)

    def forward(self, scalars, src, dst, sh, radial, norm):
        env = radial[:, -1:]
        w = self.radial(torch.cat([radial[:, :-1], scalars[src]], dim=1)) * env  # → 0 smoothly at r_c
        w = w.view(-1, 4, self.channels)
        parts = []
        for l in range(4):
            y = sh[:, l * l:(l + 1) * (l + 1)]
            msg = (w[:, l, :, None] * y[:, None, :]).reshape(len(src), -1)
            agg = torch.zeros(scalars.shape[0], msg.shape[1], dtype=msg.dtype, device=msg.device)
            parts.append(agg.index_add_(0, dst, msg))
        return torch.cat(parts, dim=1) * norm


class _Product(torch.nn.Module):
    """Channel-wise products x_u^(ℓ₁) ⊗ y_u^(ℓ₂) → every ℓ of ``irreps`` ("uuu"), then a linear mix."""

    def __init__(self, irreps: o3.Irreps):
        super().__init__()
        mid, instructions = [], []
        for i1, (mul, ir1) in enumerate(irreps):
            for i2, (_, ir2) in enumerate(irreps):
                for ir_out in ir1 * ir2:
                    if ir_out in irreps:
                        instructions.append((i1, i2, len(mid), "uuu", True))
                        mid.append((mul, ir_out))
        mid = o3.Irreps(mid)
        mid_sorted, perm, _ = mid.sort()
        instructions = [(i, j, perm[k], mode, train) for i, j, k, mode, train in instructions]
        self.tp = o3.TensorProduct(irreps, irreps, mid_sorted, instructions)
        self.linear = o3.Linear(mid_sorted, irreps)

    def forward(self, x, y):
        return self.linear(self.tp(x, y))


class TetrahedronHead(torch.nn.Module):
    r"""ℓ = 3 moment (e3nn basis, orthonormal harmonics) of a regular tetrahedron oriented by two vectors.

    With e₁ = a/|a|, e₂ = (b − (b·e₁)e₁)/|…|, e₃ = e₁ × e₂ the corners are
    û₀ = e₁ and û_k = −e₁/3 + (2√2/3)(cos φ_k e₂ + sin φ_k e₃), φ_k = 0, 2π/3, 4π/3,
    and the output is T₃ = Σ_k Y₃(û_k). Equivariance: a, b are ``1o``; under
    the inversion e₃ keeps its sign and {φ_k} is symmetric under φ → −φ, so
    the corners go to {−û_k} and T₃ is odd (``3o``), as the read-out's.
    ``l1_to_xyz``: the 3×3 map from e3nn's ℓ = 1 components to Cartesian
    directions (:func:`agi_data.electronic.basis.l1_basis`).

    Several candidates b are evaluated side by side: T₃ depends on the
    azimuth ψ of b about a only through cos 3(ψ − ψ₀), whose gradient
    averages out over environments when b starts far from the answer, so
    training keeps K independent read-outs of b and the one with the lowest
    held-out error is used (``ElectronicNetwork.choice``).
    """

    def __init__(self, l1_to_xyz):
        super().__init__()
        self.l1_to_xyz = np.asarray(l1_to_xyz, dtype=np.float64)  # constants, not weights: kept in float64
        phi = 2 * np.pi * np.arange(3) / 3
        self.cos_sin = np.stack([np.cos(phi), np.sin(phi)], axis=1)

    def to_xyz(self, v: torch.Tensor) -> torch.Tensor:
        """Vectors (..., 3) in e3nn's ℓ = 1 basis → Cartesian directions (float64)."""
        return v.double() @ torch.as_tensor(self.l1_to_xyz, device=v.device)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a (N, 3) and b (N, K, 3) in e3nn's ℓ = 1 basis → (N, K, 7) T₃ in e3nn's ℓ = 3 basis, one per b.

        Evaluated in float64 whatever the network's dtype: normalising a short
        vector amplifies rounding errors.
        """
        dtype = a.dtype
        a, b = self.to_xyz(a), self.to_xyz(b)
        e1 = torch.nn.functional.normalize(a, dim=-1, eps=1e-9)[:, None]
        e2 = torch.nn.functional.normalize(b - (b * e1).sum(-1, keepdim=True) * e1, dim=-1, eps=1e-9)
        e1 = e1.expand_as(e2)
        e3 = torch.linalg.cross(e1, e2, dim=-1)
        cos, sin = torch.as_tensor(self.cos_sin, device=a.device).unbind(1)
        side = cos[:, None] * e2[..., None, :] + sin[:, None] * e3[..., None, :]  # (N, K, 3 corners, xyz)
        corners = torch.cat([e1[..., None, :], -e1[..., None, :] / 3 + (2 * math.sqrt(2) / 3) * side], dim=-2)
        t3 = o3.spherical_harmonics(3, corners, normalize=False, normalization="integral").sum(dim=-2)
        return t3.to(dtype)


class _Block(torch.nn.Module):
    def __init__(self, irreps_in: o3.Irreps, channels: int, n_basis: int, radial_hidden: int,
                 readout: o3.Irreps = OUTPUT_IRREPS):
        super().__init__()
        hidden = _hidden(channels)
        self.n_scalars = irreps_in.count("0e")
        self.density = _Density(self.n_scalars, channels, n_basis, radial_hidden)
        self.mix = o3.Linear(hidden, hidden)
        self.linear1 = o3.Linear(hidden, hidden)
        self.square = _Product(hidden)
        self.cube = _Product(hidden)
        gated = o3.Irreps(f"{channels}x1o + {channels}x2e + {channels}x3o")
        self.gate = Gate(f"{channels}x0e", [torch.nn.functional.silu],
                         f"{3 * channels}x0e", [torch.sigmoid], gated)
        self.pre_gate = o3.Linear(hidden, self.gate.irreps_in)
        self.residual = o3.Linear(irreps_in, hidden)
        self.readout = o3.Linear(hidden, readout)
        self.readout_density = o3.Linear(hidden, readout)

    def forward(self, h, src, dst, sh, radial, norm):
        m = self.mix(self.density(h[:, :self.n_scalars], src, dst, sh, radial, norm)) + self.residual(h)
        sq = self.square(m, m)
        p = self.linear1(m) + sq + self.cube(sq, m)
        h = self.gate(self.pre_gate(p)) + self.residual(h)
        return h, self.readout(h) + self.readout_density(m)


class ElectronicNetwork(torch.nn.Module):
    """Per-atom ``1x1o + 1x3o`` outputs (e3nn basis) from species and periodic neighbour vectors.

    Outputs are in units of the training targets' scale; ``octupole_scale``
    (the ℓ = 3 scale) converts the tetrahedron head's T₃ into those units.
    """

    def __init__(self, *, n_species: int, cutoff: float, channels: int = 16, n_layers: int = 2,
                 n_basis: int = 8, radial_hidden: int = 32, avg_neighbours: float = 30.0,
                 head: str = "linear", octupole_scale: float = 1.0, n_candidates: int = 1):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.cutoff, self.n_basis = float(cutoff), int(n_basis)
        self.register_buffer("norm", torch.tensor(1.0 / math.sqrt(avg_neighbours)))
        self.embed = o3.Linear(o3.Irreps(f"{n_species}x0e"), o3.Irreps(f"{channels}x0e"))
        self.n_candidates = int(n_candidates) if head == "tetrahedron" else 0
        # tetrahedron head: a, then K candidates b
        readout = OUTPUT_IRREPS + o3.Irreps(f"{1 + self.n_candidates}x1o") if self.n_candidates else OUTPUT_IRREPS
        blocks, irreps = [], o3.Irreps(f"{channels}x0e")
        for _ in range(n_layers):
            blocks.append(_Block(irreps, channels, n_basis, radial_hidden, readout))
            irreps = _hidden(channels)
        self.blocks = torch.nn.ModuleList(blocks)
        self.head = None
        if head == "tetrahedron":
            self.head = TetrahedronHead(l1_basis())
            self.register_buffer("inv_octupole_scale", torch.tensor(1.0 / octupole_scale))
            #: weight of the linear ℓ = 3 read-out beside the head (starts at 0: a regular tetrahedron)
            self.correction = torch.nn.Parameter(torch.zeros(()))
            #: the candidate b used for predictions (set by training: lowest held-out error)
            self.register_buffer("choice", torch.tensor(0))

    def forward(self, onehot: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, vec: torch.Tensor,
                frame: bool = False):
        """``onehot`` (N, n_species); edges src → dst with vectors r_dst→src ``vec`` (E, 3) Å; returns (N, 10).

        ``frame=True`` (tetrahedron head only): also the unit vector â (N, 3),
        Cartesian, along which the head places a lone pair, and the ℓ = 3
        outputs of every candidate b (N, K, 7), of which the returned
        outputs use ``choice``.
        """
        r = torch.linalg.norm(vec, dim=1)
        sh = o3.spherical_harmonics(_SH, vec, normalize=True, normalization="component")
        radial = torch.cat([bessel(r, self.cutoff, self.n_basis), envelope(r, self.cutoff)[:, None]], dim=1)
        h = self.embed(onehot)
        out = 0.0
        for block in self.blocks:
            h, y = block(h, src, dst, sh, radial, self.norm)
            out = out + y
        if self.head is None:
            if frame:
                raise ValueError("frame=True needs the tetrahedron head")
            return out
        a, b = out[:, 10:13], out[:, 13:].reshape(len(out), self.n_candidates, 3)
        if not frame:
            b = b.index_select(1, self.choice.view(1))
        octupoles = self.correction * out[:, None, 3:10] + self.head(a, b) * self.inv_octupole_scale
        chosen = octupoles[:, 0] if not frame else octupoles.index_select(1, self.choice.view(1))[:, 0]
        result = torch.cat([out[:, :3], chosen], dim=1)
        if frame:
            axis = torch.nn.functional.normalize(self.head.to_xyz(a), dim=1, eps=1e-9).to(a.dtype)
            return result, axis, octupoles
        return result
