r"""Training, prediction and storage of the lone-pair model.

The model maps each ion's environment to the descriptors of
:func:`agi_data.analysis.moments.lone_pair_moments`: the ℓ = 3 moment
T₃ₘ (7 numbers, real orthonormal harmonics of that module) and the dipole μ
(e·Å, xyz). Targets come from DFT Wannier centres; frames that fail the
4-per-I / 5-per-Ag ownership check are left out of training and counted in
``model.metrics["n_bad_frames"]``.

Training
--------
Loss: mean squared error of the outputs, each target scaled by its RMS
over the training set (a scalar per ℓ: scaling commutes with rotations).
With the tetrahedron head (:class:`~agi_data.electronic.network.TetrahedronHead`,
the default) the ℓ = 3 error is averaged over the head's candidate
mirror-plane vectors (the one with the lowest held-out error predicts) and
a corner-alignment term steers its lone-pair axis into a corner of the
target tetrahedron (:func:`_loss`; docs/electronic.md explains why both
are needed).
Adam with a cosine decay of the learning rate; the parameters with the
lowest held-out loss are kept. Held-out data: the last
``validation_fraction`` of the usable frames of every run, a contiguous
time block (neighbouring MD frames are correlated; a random frame split
would flatter the model).

Held-out metrics (``model.metrics``): ``rotor_rmse`` (pooled over the x, y, z
axes) and ``rotor_rmse_x|y|z`` of the rotor function
M = (3√5/20)(4π/7) Σₘ T₃ₘ Y₃ₘ(n̂), ``octupole_rmse``, ``dipole_rmse`` (e·Å),
``dipole_std`` (e·Å, per component, held-out) and ``dipole_rel`` = their
ratio, with the frame counts.

Prediction
----------
``model.predict(traj)`` returns a Dask-backed Dataset: nothing runs until it
is computed, then one block of ``block_frames`` frames at a time, so memory
is bounded by a block, never by the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import math
import pickle
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from e3nn import o3

from ..analysis.moments import (
    CONVENTION,
    L3_M,
    NORMALISATION,
    ROTOR_L3_NORM,
    lone_pair_moments,
    real_harmonics_l3,
)
from ..elements import symbols, to_atomic_numbers
from .basis import l1_basis, l3_basis, to_e3nn, to_project
from .errors import ElectronicModelError
from .graph import FrameGraph, batch, frame_graph
from .network import HEADS, ElectronicNetwork

__all__ = ["TrainingSettings", "ElectronicModel", "fit_electronic_model", "FORMAT"]

#: tag and version of the saved model file
FORMAT = "agi-electronic-model"
FORMAT_VERSION = 2  # 2: density read-out and the tetrahedron head
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """Hyper-parameters of the network and its training (the ``**training`` of :func:`fit_electronic_model`)."""

    epochs: int = 60
    learning_rate: float = 1e-2
    batch_frames: int = 2
    channels: int = 16
    n_layers: int = 2
    n_basis: int = 8
    radial_hidden: int = 32
    validation_fraction: float = 0.2
    dipole_weight: float = 1.0
    frame_weight: float = 1.0  # weight of the corner-alignment term (tetrahedron head; see _loss)
    frame_candidates: int = 8  # independent read-outs of the head's mirror-plane vector; the best is kept
    # "linear" (default: the read-out that learns real DFT labels, docs/electronic-validation.md) or
    # "tetrahedron": a regular tetrahedron from two learned vectors + read-out (learns the synthetic rule)
    head: str = "linear"
    dtype: str = "float32"
    device: str | None = None  # None: "cuda" when available, else "cpu"
    block_frames: int = 64  # frames per prediction block
    threads: int | None = None  # torch CPU threads during training (None: torch's default)

    def __post_init__(self):
        checks = {
            "epochs": self.epochs >= 1, "learning_rate": self.learning_rate > 0,
            "batch_frames": self.batch_frames >= 1, "channels": self.channels >= 1,
            "n_layers": self.n_layers >= 1, "n_basis": self.n_basis >= 1, "radial_hidden": self.radial_hidden >= 1,
            "validation_fraction": 0 < self.validation_fraction < 1, "dipole_weight": self.dipole_weight >= 0, "frame_weight": self.frame_weight >= 0, "frame_candidates": self.frame_candidates >= 1,
            "dtype": self.dtype in ("float32", "float64"), "head": self.head in HEADS, "block_frames": self.block_frames >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ElectronicModelError(f"invalid training settings {bad}: " + ", ".join(
                f"{k}={getattr(self, k)!r}" for k in bad))

    @classmethod
    def from_kwargs(cls, **kwargs) -> TrainingSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ElectronicModelError(f"unknown training option(s) {unknown}; known: {sorted(names)}")
        return cls(**kwargs)


def _device(settings: TrainingSettings) -> torch.device:
    if settings.device is not None:
        return torch.device(settings.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _lazy_cell(traj: xr.Dataset, frames: np.ndarray):
    """The cells of ``frames``, (n, 3, 3) Å: a Dask slice of a time-dependent cell (nothing read yet), or numpy."""
    cell = traj["cell"]
    if "time" in cell.dims:
        return cell.isel(time=frames).transpose("time", "vec", "xyz").data
    return np.broadcast_to(np.asarray(cell.transpose("vec", "xyz").values, dtype=np.float64), (len(frames), 3, 3))


def _frame_graphs(positions, cells, types: np.ndarray, cutoff: float) -> list[FrameGraph]:
    pos = np.asarray(positions, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64)
    return [frame_graph(p, c, types, cutoff) for p, c in zip(pos, cells)]


def _graphs(traj: xr.Dataset, frames: np.ndarray, types: np.ndarray, cutoff: float) -> list[FrameGraph]:
    return _frame_graphs(traj["positions"].isel(time=frames).values, _lazy_cell(traj, frames), types, cutoff)


def _rotor_weights() -> np.ndarray:
    """(7, 3): M along x, y, z = T₃ @ this."""
    return ROTOR_L3_NORM * (4 * math.pi / 7) * real_harmonics_l3(np.eye(3)).T


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------

class ElectronicModel:
    """A trained lone-pair model: ``predict``, ``save``, ``load``, ``metrics``.

    Attributes
    ----------
    species
        the element whose moments it predicts (``"I"``).
    cutoff
        neighbour cutoff, Å.
    elements
        the elements it knows (a run with any other is refused).
    metrics
        held-out errors (see the module docstring).
    """

    def __init__(self, network: ElectronicNetwork, config: dict, metrics: dict):
        self.network = network
        self.config = dict(config)
        self.metrics = dict(metrics)

    # -- identity ---------------------------------------------------------------------------
    species = property(lambda self: self.config["species"])
    cutoff = property(lambda self: self.config["cutoff"])
    elements = property(lambda self: list(self.config["elements"]))

    def __repr__(self):
        return (f"ElectronicModel(species={self.species!r}, cutoff={self.cutoff:g} Å, elements={self.elements}, "
                f"rotor_rmse={self.metrics.get('rotor_rmse', float('nan')):.3g})")

    # -- prediction -------------------------------------------------------------------------
    def check_run(self, traj: xr.Dataset, *, species: str | None = None, cutoff: float | None = None) -> np.ndarray:
        """Refuse a run the model cannot describe; return each atom's species index."""
        if species is not None and species != self.species:
            raise ElectronicModelError(f"this model predicts {self.species} moments, not {species}: "
                                       f"train a model with species={species!r}")
        if cutoff is not None and not math.isclose(float(cutoff), self.cutoff):
            raise ElectronicModelError(f"this model was trained with cutoff={self.cutoff:g} Å, not {cutoff:g} Å: "
                                       "retrain with that cutoff or use the model's")
        if not isinstance(traj, xr.Dataset) or "positions" not in traj or "species" not in traj.coords:
            raise ElectronicModelError("expected a trajectory Dataset with positions(time, atom, xyz) and species(atom)")
        present = symbols(np.unique(traj["species"].values))
        unknown = sorted(set(present) - set(self.elements))
        if unknown:
            raise ElectronicModelError(f"the run has atoms the model does not know ({unknown}; it knows "
                                       f"{self.elements}): train on data that contains them")
        if self.species not in present:
            raise ElectronicModelError(f"the run has no {self.species} ions to predict")
        z = to_atomic_numbers(self.elements)
        return np.searchsorted(z, np.asarray(traj["species"].values)) if np.all(np.diff(z) > 0) else np.array(
            [list(z).index(v) for v in traj["species"].values])

    def _forward(self, graphs: list[FrameGraph], ions: np.ndarray) -> np.ndarray:
        """(F, n_ions, 10) outputs in e3nn's basis, physical units."""
        net = self.network
        param = next(net.parameters())
        types, src, dst, vec, offsets = batch(graphs)
        onehot = torch.nn.functional.one_hot(torch.as_tensor(types, device=param.device),
                                             len(self.elements)).to(param.dtype)
        out = net(onehot, torch.as_tensor(src, device=param.device), torch.as_tensor(dst, device=param.device),
                  torch.as_tensor(vec, dtype=param.dtype, device=param.device))
        rows = (offsets[:, None] + ions[None, :]).ravel()
        scale = np.repeat(np.asarray(self.config["scale"]), [3, 7])
        return out[torch.as_tensor(rows, device=param.device)].detach().cpu().double().numpy().reshape(
            len(graphs), len(ions), 10) * scale

    def _predict_arrays(self, positions, cells, types, ions) -> np.ndarray:
        with torch.no_grad():
            return self._forward(_frame_graphs(positions, cells, types, self.cutoff), ions)

    def predict(self, traj: xr.Dataset, frames: Sequence[int] | None = None, *, block_frames: int | None = None,
                species: str | None = None, cutoff: float | None = None) -> xr.Dataset:
        """Moments of every ion of the model's species on ``frames`` (default: all) of ``traj``.

        Returns the Dataset of :func:`agi_data.analysis.moments.lone_pair_moments`
        (``octupole(frame, ion, m)``, ``dipole(frame, ion, xyz)`` in e·Å,
        coordinates ``frame``, ``frame_time``, ``atom(ion)``, ``bad_frame``),
        Dask-backed in blocks of ``block_frames`` frames (compute the two
        variables together: each block runs the network once per compute).
        ``species``/``cutoff``, if given, must be the model's.
        """
        import dask
        import dask.array as da

        types = self.check_run(traj, species=species, cutoff=cutoff)
        n_time = traj.sizes["time"]
        frames = np.arange(n_time) if frames is None else np.asarray(frames, dtype=np.int64)
        if frames.ndim != 1 or frames.size == 0 or frames.min() < 0 or frames.max() >= n_time:
            raise ElectronicModelError(f"frames must be indices into the run's {n_time} frames")
        block = int(block_frames or self.config["settings"]["block_frames"])
        ions = np.flatnonzero(np.asarray(traj["species"].values) == to_atomic_numbers([self.species])[0])
        # Each block task gets only its own frames' positions and cells (Dask slices: a block reads its chunks,
        # never the run), and explicit names: tokenizing the bound method would pickle the whole network per call.
        model_name = f"electronic-model-{self.config.get('sha256') or id(self)}"
        run = dask.delayed(self._predict_arrays, name=model_name, pure=True)
        blocks = []
        for start in range(0, frames.size, block):
            part = frames[start:start + block]
            pos, cells = traj["positions"].isel(time=part).data, _lazy_cell(traj, part)
            key = f"electronic-predict-{dask.base.tokenize(model_name, pos, cells, types, ions)}"
            delayed = run(pos, cells, types, ions, dask_key_name=key)
            blocks.append(da.from_delayed(delayed, shape=(part.size, ions.size, 10), dtype=np.float64))
        raw = da.concatenate(blocks, axis=0)
        dip = raw[..., :3] @ l1_basis()
        oct_ = raw[..., 3:] @ l3_basis()
        t = np.asarray(traj["time"].values)[frames]
        coords = {"frame": ("frame", frames), "frame_time": ("frame", t, {"units": "ps"}),
                  "atom": ("ion", ions), "m": ("m", L3_M), "xyz": ["x", "y", "z"],
                  "bad_frame": ("frame", np.zeros(frames.size, bool))}
        ds = xr.Dataset({
            "octupole": (("frame", "ion", "m"), oct_,
                         {"units": "1", "long_name": f"predicted l=3 moment of the {self.species} lone pairs"}),
            "dipole": (("frame", "ion", "xyz"), dip,
                       {"units": "e·Å", "long_name": f"predicted {self.species} dipole"}),
        }, coords=coords)
        ds.attrs.update(species=self.species, convention=CONVENTION, normalisation=NORMALISATION,
                        source="model", model_sha256=self.config.get("sha256", ""), cutoff_A=self.cutoff,
                        dipole_units="e·Å")
        return ds

    # -- storage ----------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the model (weights, configuration, metrics) to ``path`` (a torch file, tensors and plain types)."""
        path = Path(path)
        payload = {"format": FORMAT, "version": FORMAT_VERSION, "config": self.config, "metrics": self.metrics,
                   "state_dict": {k: v.detach().cpu() for k, v in self.network.state_dict().items()}}
        tmp = path.with_name(path.name + ".partial")
        torch.save(payload, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path, *, device: str | None = None) -> ElectronicModel:
        """Read a model written by :meth:`save`; a truncated or foreign file raises :class:`ElectronicModelError`."""
        path = Path(path)
        if not path.is_file():
            raise ElectronicModelError(f"no model file at {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError, zipfile.BadZipFile) as err:
            raise ElectronicModelError(
                f"{path} is not a readable electronic model ({type(err).__name__}: {str(err)[:200]}); the file is "
                "truncated or corrupt — copy it again or retrain with fit_electronic_model") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ElectronicModelError(f"{path} is a torch file but not an electronic model (no '{FORMAT}' tag)")
        if payload.get("version") != FORMAT_VERSION:
            raise ElectronicModelError(f"{path} has model format version {payload.get('version')}, this code reads "
                                       f"{FORMAT_VERSION}: retrain, or use the agi-data release that wrote it")
        config = payload["config"]
        settings = TrainingSettings(**dict(config["settings"], device=device))
        net = _build_network(config, settings)
        try:
            net.load_state_dict(payload["state_dict"])
        except RuntimeError as err:
            raise ElectronicModelError(f"{path}: the weights do not fit the stored architecture ({err})") from None
        net.eval()
        return cls(net, config, payload["metrics"])


def _build_network(config: dict, settings: TrainingSettings) -> ElectronicNetwork:
    dtype = getattr(torch, settings.dtype)
    net = ElectronicNetwork(n_species=len(config["elements"]), cutoff=config["cutoff"], channels=settings.channels,
                            n_layers=settings.n_layers, n_basis=settings.n_basis,
                            radial_hidden=settings.radial_hidden, avg_neighbours=config["avg_neighbours"],
                            head=settings.head, octupole_scale=config["scale"][1],
                            n_candidates=settings.frame_candidates)
    return net.to(dtype=dtype, device=_device(settings))


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Split:
    graphs: list
    targets: list  # (n_ions, 10) in e3nn basis, physical units
    ions: np.ndarray


def _prepare(pairs, species: str, cutoff: float, validation_fraction: float):
    """Graphs and targets of the usable frames of every pair, split by time block; counts of bad frames."""
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise ElectronicModelError("pairs must be a non-empty list of (trajectory, wannier) Datasets")
    elements = sorted({s for traj, _ in pairs for s in symbols(np.unique(traj["species"].values))},
                      key=lambda s: int(to_atomic_numbers([s])[0]))
    if species not in elements:
        raise ElectronicModelError(f"no {species} ions in the training runs (they hold {elements})")
    z_known = [int(v) for v in to_atomic_numbers(elements)]
    train, valid, n_bad, n_frames, runs = [], [], 0, 0, []
    for k, pair in enumerate(pairs):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise ElectronicModelError(f"pairs[{k}] is not a (trajectory, wannier) pair")
        traj, wan = pair
        mom = lone_pair_moments(traj, wan, species=species).compute()
        good = np.isfinite(mom["octupole"].values).all(axis=(1, 2)) & np.isfinite(mom["dipole"].values).all(axis=(1, 2))
        n_bad += int((~good).sum())
        n_frames += int(good.size)
        frames = np.asarray(mom["frame"].values)[good]
        if frames.size == 0:
            continue
        targets = to_e3nn(mom["dipole"].values[good], mom["octupole"].values[good])
        types = np.array([z_known.index(int(v)) for v in traj["species"].values])
        ions = np.asarray(mom["atom"].values)
        graphs = _graphs(traj, frames, types, cutoff)
        n_val = max(1, int(round(validation_fraction * frames.size))) if frames.size > 1 else 0
        cut = frames.size - n_val
        train.append(_Split(graphs[:cut], list(targets[:cut]), ions))
        valid.append(_Split(graphs[cut:], list(targets[cut:]), ions))
        runs.append(str(traj.attrs.get("run_id", f"pair{k}")))
    n_train = sum(len(s.graphs) for s in train)
    n_valid = sum(len(s.graphs) for s in valid)
    if n_train == 0 or n_valid == 0:
        raise ElectronicModelError(
            f"not enough usable frames: {n_train} for training and {n_valid} held out ({n_bad} of {n_frames} "
            "frames failed the 4-per-I / 5-per-Ag check and were left out); label more frames")
    return elements, train, valid, {"n_bad_frames": n_bad, "n_frames": n_frames, "n_train_frames": n_train,
                                    "n_validation_frames": n_valid, "runs": runs}


def _items(splits: list[_Split]):
    return [(g, t, s.ions) for s in splits for g, t in zip(s.graphs, s.targets)]


def _batch_tensors(items, n_elements, dtype, device):
    graphs = [g for g, _, _ in items]
    types, src, dst, vec, offsets = batch(graphs)
    rows = np.concatenate([o + ions for o, (_, _, ions) in zip(offsets, items)])
    target = np.concatenate([t for _, t, _ in items])
    onehot = torch.nn.functional.one_hot(torch.as_tensor(types), n_elements).to(dtype)
    return (onehot.to(device), torch.as_tensor(src, device=device), torch.as_tensor(dst, device=device),
            torch.as_tensor(vec, dtype=dtype, device=device), torch.as_tensor(rows, device=device),
            torch.as_tensor(target, dtype=dtype, device=device))


#: F(n̂)/|T₃| = Σₘ T₃ₘ Y₃ₘ(n̂)/|T₃| with n̂ at a corner of a regular tetrahedron: (20/9)·√(7/4π)/√(80/9), its maximum
CORNER_ALIGNMENT = (20 / 9) * math.sqrt(7 / (4 * math.pi)) / math.sqrt(80 / 9)


def _loss(net, tensors, scale_t, weights, frame_weight: float = 0.0, per_candidate: bool = False):
    r"""Weighted MSE of the scaled targets; with the tetrahedron head, averaged over its candidates, plus
    ``frame_weight`` × the corner-alignment term.

    The corner-alignment term 1 − F(â)/(c|T₃|), F(n̂) = Σₘ T₃ₘ Y₃ₘ(n̂) (the
    target's rotor function along n̂ up to a constant, c = :data:`CORNER_ALIGNMENT`),
    is zero when the head's lone-pair axis â points at a corner of the
    target's (regular) tetrahedron. On the sphere F has no local maxima but
    the four corners, while the MSE of T₃ over orientations has spurious
    minima; the term steers â into a corner, where both are minimal.
    ``per_candidate=True``: the loss of each candidate (K,), without the term.
    """
    onehot, src, dst, vec, rows, target = tensors
    if net.head is None:
        out = net(onehot, src, dst, vec)[rows]
        err = (out - target / scale_t) ** 2
        return (err[:, :3].mean() * weights[0] + err[:, 3:].mean() * weights[1]) / (weights[0] + weights[1])
    out, axis, octupoles = net(onehot, src, dst, vec, frame=True)
    out, axis, octupoles = out[rows], axis[rows], octupoles[rows]
    scaled = target / scale_t
    dip = ((out[:, :3] - scaled[:, :3]) ** 2).mean()
    oct_ = ((octupoles - scaled[:, None, 3:]) ** 2).mean(dim=(0, 2))  # (K,)
    loss = (dip * weights[0] + oct_ * weights[1]) / (weights[0] + weights[1])
    if per_candidate:
        return loss
    loss = loss.mean()
    if frame_weight:
        t3 = target[:, 3:]
        f = (o3.spherical_harmonics(3, axis, normalize=False, normalization="integral") * t3).sum(dim=1)
        loss = loss + frame_weight * (1 - f / (CORNER_ALIGNMENT * t3.norm(dim=1).clamp_min(1e-12))).mean()
    return loss


def _metrics(pred: np.ndarray, target: np.ndarray) -> dict:
    """Held-out errors from (n, 10) predictions and targets in e3nn's basis, physical units."""
    dp, op = to_project(pred)
    dt, ot = to_project(target)
    w = _rotor_weights()
    m_err = (op - ot) @ w
    out = {"rotor_rmse": float(np.sqrt(np.mean(m_err**2))),
           "rotor_rms": float(np.sqrt(np.mean((ot @ w) ** 2))),
           "octupole_rmse": float(np.sqrt(np.mean(np.sum((op - ot) ** 2, axis=1)))),
           "dipole_rmse": float(np.sqrt(np.mean((dp - dt) ** 2))),
           "dipole_std": float(np.std(dt, axis=0).mean())}
    out.update({f"rotor_rmse_{a}": float(np.sqrt(np.mean(m_err[:, i] ** 2))) for i, a in enumerate("xyz")})
    out["dipole_rel"] = out["dipole_rmse"] / out["dipole_std"] if out["dipole_std"] > 0 else float("nan")
    return out


def fit_electronic_model(pairs, *, species: str = "I", cutoff: float = 6.0, seed: int = 0,
                         **training) -> ElectronicModel:
    """Train the lone-pair model on DFT-labelled frames.

    Parameters
    ----------
    pairs
        list of ``(traj, wannier)`` Datasets (store schema; centres on some frames of each run).
    species
        the ions whose ℓ = 3 moment and dipole are learned (``"I"``).
    cutoff
        neighbour cutoff, Å; periodic images within it are all included.
    seed
        seeds the initial weights and the order of the frames: training is
        deterministic for a seed on CPU.
    **training
        :class:`TrainingSettings` fields (``epochs``, ``learning_rate``, ``channels``, …).

    Returns
    -------
    :class:`ElectronicModel` with held-out ``metrics`` (time-block split).
    """
    settings = TrainingSettings.from_kwargs(**training)
    if not cutoff > 0:
        raise ElectronicModelError(f"cutoff must be a positive distance in Å, got {cutoff!r}")
    t0 = time.perf_counter()
    elements, train, valid, counts = _prepare(pairs, species, float(cutoff), settings.validation_fraction)
    train_items, valid_items = _items(train), _items(valid)
    tgt = np.concatenate([t for _, t, _ in train_items])
    scale = [float(np.sqrt(np.mean(np.sum(tgt[:, :3] ** 2, 1)) / 3) or 1.0),
             float(np.sqrt(np.mean(np.sum(tgt[:, 3:] ** 2, 1)) / 7) or 1.0)]
    avg = float(np.mean([len(g.src) / len(g.types) for g, _, _ in train_items]))
    config = {"species": species, "cutoff": float(cutoff), "elements": elements, "scale": scale,
              "avg_neighbours": avg, "seed": int(seed), "settings": dataclasses.asdict(settings), **counts}
    torch.manual_seed(seed)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    net = _build_network(config, settings)
    dtype, device = getattr(torch, settings.dtype), _device(settings)
    scale_t = torch.as_tensor(np.repeat(scale, [3, 7]), dtype=dtype, device=device)
    weights = (settings.dipole_weight * 3 / 10, 7 / 10)
    frame_weight = settings.frame_weight if settings.head == "tetrahedron" else 0.0
    opt = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    n_batches = math.ceil(len(train_items) / settings.batch_frames)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.epochs * n_batches,
                                                       eta_min=settings.learning_rate / 30)
    rng = np.random.default_rng(seed)
    valid_t = _batch_tensors(valid_items, len(elements), dtype, device)
    best, best_state, history = math.inf, None, []
    for _epoch in range(settings.epochs):
        net.train()
        order = rng.permutation(len(train_items))
        for b in range(n_batches):
            items = [train_items[i] for i in order[b * settings.batch_frames:(b + 1) * settings.batch_frames]]
            loss = _loss(net, _batch_tensors(items, len(elements), dtype, device), scale_t, weights, frame_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            if net.head is None:
                val = float(_loss(net, valid_t, scale_t, weights))
            else:  # held-out loss of every candidate; predictions use the best
                per = _loss(net, valid_t, scale_t, weights, per_candidate=True)
                net.choice.fill_(int(torch.argmin(per)))
                val = float(per.min())
        history.append(val)
        log.info("epoch %d/%d: held-out loss %.4g (%.0f s)", _epoch + 1, settings.epochs, val,
                 time.perf_counter() - t0)
        if val < best:
            best, best_state = val, {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    net.eval()
    model = ElectronicModel(net, config, {})
    with torch.no_grad():
        pred = np.concatenate([model._forward([g], ions)[0] for g, _, ions in valid_items])
    metrics = _metrics(pred, np.concatenate([t for _, t, _ in valid_items]))
    metrics.update(counts, validation_loss=best, training_seconds=time.perf_counter() - t0,
                   epochs=settings.epochs, validation_history=history)
    model.metrics = metrics
    buf = io.BytesIO()
    torch.save(best_state, buf)
    model.config["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    return model
