"""The frame loop of :func:`agi_data.md.run_md` and the observers attached to it (ASE's ``dyn.attach`` pattern).

Each observer is a callable taking one :class:`~agi_data.md.base.Frame`, with
one job: :class:`BlowUpGuard` stops the run at a blow-up, :class:`BatchWriter`
appends frames to the store in batches, :class:`PressureMean` averages the
pressure; the progress bar is one more.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from . import thermo
from .base import Engine, Frame
from .options import BlowUpLimits, StreamOptions


class FrameLoop:
    """Pull frames from an engine and hand each to the attached observers, in order (ASE's ``attach``)."""

    def __init__(self, frames: Iterator[Frame]):
        self.frames = frames
        self.observers: list[Callable[[Frame], None]] = []
        self.engine_s = 0.0

    def attach(self, observer: Callable[[Frame], None]) -> None:
        self.observers.append(observer)

    def run(self) -> None:
        while True:
            t0 = time.perf_counter()
            try:
                fr = next(self.frames)
            except StopIteration:
                self.engine_s += time.perf_counter() - t0
                return
            self.engine_s += time.perf_counter() - t0
            for observer in self.observers:
                observer(fr)


class BlowUpStop(Exception):
    def __init__(self, why: str, fr: Frame, *, heating: bool = False):
        super().__init__(why)
        self.why, self.step, self.heating = why, fr.step, heating


class BlowUpGuard:
    """Raises at the first frame that :meth:`BlowUpLimits.why` refuses (the first frame is the energy
    reference), or when the kinetic temperature of the last ``limits.temperature_window`` frames runs away
    (:meth:`BlowUpLimits.too_hot`; needs ``masses`` in u and the nominal temperature in K)."""

    def __init__(self, limits: BlowUpLimits, n_atoms: int, *, masses: np.ndarray | None = None,
                 nominal_K: float | None = None):
        self.limits, self.n_atoms, self.e_ref = limits, n_atoms, None
        self.masses, self.nominal_K = masses, nominal_K
        self.recent: deque[float] = deque(maxlen=limits.temperature_window)

    def __call__(self, fr: Frame) -> None:
        why = self.limits.why(fr, self.n_atoms, self.e_ref)
        if why is not None:
            raise BlowUpStop(why, fr)
        if self.e_ref is None:
            self.e_ref = fr.energy
        if self.masses is not None and self.nominal_K:
            self.recent.append(thermo.kinetic_temperature(fr.velocities[None], self.masses))
            hot = self.limits.too_hot(float(np.mean(self.recent)), len(self.recent), self.nominal_K)
            if hot is not None:
                raise BlowUpStop(hot, fr, heating=True)


class BatchWriter:
    """Buffers frames and appends them to the store run in batches (one transaction each), saving the
    engine's state with the last stored frame for an exact continuation."""

    def __init__(self, writer, store, run_id: str, engine: Engine, options: StreamOptions, result):
        self.writer, self.store, self.run_id, self.engine = writer, store, run_id, engine
        self.options, self.result = options, result
        self.buf: list[Frame] = []
        self.last_flush = time.perf_counter()

    def __call__(self, fr: Frame) -> None:
        self.buf.append(fr)
        if len(self.buf) >= self.options.flush_every or \
                time.perf_counter() - self.last_flush > self.options.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        t0 = time.perf_counter()
        dtype, buf, result = self.options.dtype, self.buf, self.result
        result.version = self.writer.append(
            np.stack([f.positions for f in buf]).astype(dtype),
            velocities=np.stack([f.velocities for f in buf]).astype(dtype),
            forces=np.stack([f.forces for f in buf]).astype(dtype),
            energies=np.array([f.energy for f in buf]),
        )
        result.n_frames += len(buf)
        result.new_frames += len(buf)
        st = self.engine.state()
        if st:  # engine state of the last stored frame, for an exact continuation
            result.version = self.store.set_attrs(self.run_id, engine_state={**st, "frame": result.n_frames - 1})
        buf.clear()
        result.store_s += time.perf_counter() - t0
        self.last_flush = time.perf_counter()


class PressureMean:
    """The mean pressure (GPa) of the frames that report one."""

    def __init__(self):
        self.values: list[float] = []

    def __call__(self, fr: Frame) -> None:
        if fr.pressure_GPa is not None:
            self.values.append(fr.pressure_GPa)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None


def progress_display(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("frames"), TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled)


