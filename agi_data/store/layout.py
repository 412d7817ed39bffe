"""Chunk layout of a run's arrays.

Writers append along time; correlation functions read the whole time axis
for a block of atoms. A chunk of ``chunk_frames × chunk_atoms × 3`` serves
both: an append rewrites only the chunks of the last, partial time block,
and an atom-block read touches ``T / chunk_frames`` chunks per block. The
defaults below come from the measurements in ``store/README.md``
(``benchmarks/store_layout.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: default chunk length along time (frames)
CHUNK_FRAMES = 128
#: default chunk width along atoms
CHUNK_ATOMS = 128


@dataclass(frozen=True)
class Layout:
    chunk_frames: int = CHUNK_FRAMES
    chunk_atoms: int = CHUNK_ATOMS

    @classmethod
    def for_run(cls, n_atoms: int, chunk_frames: int | None = None, chunk_atoms: int | None = None) -> "Layout":
        from .errors import StoreValidationError

        cf = CHUNK_FRAMES if chunk_frames is None else int(chunk_frames)
        ca = min(CHUNK_ATOMS, n_atoms) if chunk_atoms is None else int(chunk_atoms)
        if cf < 1 or ca < 1:
            raise StoreValidationError(f"chunk sizes must be ≥ 1, got chunk_frames={cf}, chunk_atoms={ca}")
        return cls(cf, min(ca, n_atoms))

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        return cls(int(d["chunk_frames"]), int(d["chunk_atoms"]))

    def to_dict(self) -> dict:
        return asdict(self)

    def chunks(self, dims: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
        """Chunk shape of an array: the layout's sizes along time/frame and atom, whole along other dims."""
        sizes = {"time": self.chunk_frames, "frame": self.chunk_frames, "atom": self.chunk_atoms}
        out = []
        for dim, n in zip(dims, shape):
            if dim in ("time", "frame"):
                out.append(sizes[dim])  # the growing axis: its length now says nothing
            else:
                out.append(min(sizes.get(dim, n), max(n, 1)))
        return tuple(out)
