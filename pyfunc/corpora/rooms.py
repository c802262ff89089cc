"""Simulated room impulse responses (pyroomacoustics' image-source method): stand-ins for RIRS_NOISES.

A room is a shoebox of a size class (:data:`ROOM_CLASSES`, like Kaldi's small/medium/large
simulated rooms) with one absorption coefficient for all walls, chosen with
``pyroomacoustics.inverse_sabine`` for a target (Sabine) RT60 drawn in :data:`TARGET_RT60`,
and one source and one microphone drawn inside it (at least :data:`WALL_MARGIN` from every
wall, at least :data:`MIN_DISTANCE` apart). The RIR is pyroomacoustics' (direct path at
sample ``frac_delay_length // 2 + distance / c * fs``, amplitude ``1 / distance``), cut where
its Schroeder energy has decayed by 60 dB (at most :data:`MAX_SECONDS`); its RT60 is
measured on the full response (T30, extrapolated), which for a shoebox is usually longer
than Sabine's. The augmenter normalises RIRs to unit energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyroomacoustics as pra

from pyfunc.data.audio import SAMPLE_RATE

ROOM_CLASSES = {  # length, width, height ranges in metres
    "small": ((3.0, 5.0), (2.5, 5.0), (2.4, 3.0)),
    "medium": ((5.0, 10.0), (4.0, 8.0), (2.6, 4.0)),
    "large": ((10.0, 20.0), (8.0, 15.0), (3.5, 6.0)),
}
TARGET_RT60 = (0.15, 0.6)
WALL_MARGIN = 0.5
MIN_DISTANCE = 0.7
MAX_SECONDS = 1.2
MAX_ORDER = 60  # image-source order cap (keeps the biggest, most reflective rooms quick)


@dataclass(frozen=True)
class RoomSpec:
    """One simulated room, source and microphone."""

    room: str
    size_class: str
    dims: tuple[float, float, float]
    target_rt60: float
    absorption: float
    max_order: int
    source: tuple[float, float, float]
    mic: tuple[float, float, float]

    @property
    def distance(self) -> float:
        return float(np.linalg.norm(np.subtract(self.source, self.mic)))

    def direct_path_sample(self) -> float:
        """Where the direct sound arrives in the RIR, in samples (pyroomacoustics' convention)."""
        return pra.constants.get("frac_delay_length") // 2 + self.distance / pra.constants.get("c") * SAMPLE_RATE


def draw_room(room: str, size_class: str, rng: np.random.Generator) -> RoomSpec:
    """Draw the size, target RT60, absorption and the source and microphone positions of a room."""
    for _ in range(100):
        dims = tuple(round(float(rng.uniform(low, high)), 2) for low, high in ROOM_CLASSES[size_class])
        target = round(float(rng.uniform(*TARGET_RT60)), 3)
        try:
            absorption, max_order = pra.inverse_sabine(target, list(dims))
        except ValueError:  # the room is too large for so short an RT60
            continue
        if not 0.0 < absorption < 1.0:
            continue
        source = _position(dims, rng)
        mic = _position(dims, rng)
        if np.linalg.norm(np.subtract(source, mic)) >= MIN_DISTANCE:
            return RoomSpec(room, size_class, dims, target, round(float(absorption), 4), min(int(max_order), MAX_ORDER),
                            source, mic)
    raise RuntimeError(f"room {room}: no valid {size_class} room in 100 draws")


def _position(dims: tuple[float, float, float], rng: np.random.Generator) -> tuple[float, float, float]:
    x = rng.uniform(WALL_MARGIN, dims[0] - WALL_MARGIN)
    y = rng.uniform(WALL_MARGIN, dims[1] - WALL_MARGIN)
    z = rng.uniform(1.0, min(2.0, dims[2] - WALL_MARGIN))
    return (round(float(x), 3), round(float(y), 3), round(float(z), 3))


def simulate_rir(spec: RoomSpec) -> tuple[np.ndarray, float]:
    """The RIR of ``spec`` at 16 kHz (float64, cut as the module docstring says) and its measured RT60 in s."""
    room = pra.ShoeBox(list(spec.dims), fs=SAMPLE_RATE, materials=pra.Material(spec.absorption),
                       max_order=spec.max_order)
    room.add_source(list(spec.source))
    room.add_microphone(list(spec.mic))
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    rt60 = float(pra.experimental.measure_rt60(rir, fs=SAMPLE_RATE, decay_db=30))
    energy = np.cumsum(rir[::-1] ** 2)[::-1]
    below = np.flatnonzero(energy < energy[0] * 1e-6)
    end = min(int(below[0]) if below.size else rir.size, int(MAX_SECONDS * SAMPLE_RATE))
    return rir[:end], rt60
