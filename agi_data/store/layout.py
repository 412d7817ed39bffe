"""Chunk layout and chunk codecs of a run's arrays.

Writers append along time; correlation functions read the whole time axis
for a block of atoms. A chunk of ``chunk_frames × chunk_atoms × 3`` serves
both: an append rewrites only the chunks of the last, partial time block,
and an atom-block read touches ``T / chunk_frames`` chunks per block. Each
chunk costs a fixed ~0.5 ms of Zarr/Icechunk work on read whatever its size,
so the default is long along time (512 frames: 4× fewer chunks than 128,
the same append rate, 768 kB per float32 chunk) and 128 atoms wide. The
measurements are in ``store/README.md`` (``benchmarks/store_layout.py``).

Every chunk is compressed, then checksummed (Zarr v3 ``crc32c`` codec: four
bytes appended to each stored chunk, checked on every decode), so a flipped
bit in a chunk file is an error on read and in ``agi store verify``, never a
silently different number. The compressor is the one
``benchmarks/store_codec.py`` measured fastest to decode on position chunks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from zarr.codecs import BloscCodec, Crc32cCodec

from . import validate

#: default chunk length along time (frames)
CHUNK_FRAMES = 512
#: default chunk width along atoms
CHUNK_ATOMS = 128


def compressors() -> tuple:
    """The bytes-to-bytes codecs of every array the store writes: compressor, then checksum."""
    return (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec())


@dataclass(frozen=True)
class Layout:
    chunk_frames: int = CHUNK_FRAMES
    chunk_atoms: int = CHUNK_ATOMS

    @classmethod
    def for_run(cls, n_atoms: int, chunk_frames: int | None = None, chunk_atoms: int | None = None) -> Layout:
        cf = validate.chunk_size("chunk_frames", chunk_frames)
        ca = validate.chunk_size("chunk_atoms", chunk_atoms)
        cf = CHUNK_FRAMES if cf is None else cf
        ca = min(CHUNK_ATOMS if ca is None else ca, n_atoms)
        validate.chunk_bytes(cf, ca)
        return cls(cf, ca)

    @classmethod
    def from_dict(cls, d: dict) -> Layout:
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
