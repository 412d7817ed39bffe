"""The demo's frame bookkeeping: which stored frames a stage takes, and which Wannier frames the time
correlations use when some were left out."""

import numpy as np
import pytest
import xarray as xr

from agi_data.demo.analyses import equally_spaced_block
from agi_data.demo.pipeline import DemoError, frame_indices


def wannier_frames(frames):
    return xr.Dataset(coords={"frame": frames, "frame_time": ("frame", 0.01 * np.asarray(frames))})


@pytest.mark.parametrize(
    "frames, kept",
    [([0, 10, 20, 30], [0, 10, 20, 30]),         # nothing left out: all of them, no note
     ([0, 10, 30, 40, 50], [30, 40, 50]),        # frame 20 failed: the longer block after the gap
     ([0, 10, 20, 40, 50], [0, 10, 20]),         # frame 30 failed: the longer block before it
     ([0, 20, 40, 60, 70], [0, 20, 40, 60]),     # the grid is the longest block's step, not the smallest step
     ([0, 30, 40], [30, 40])],                   # a tie goes to the finer grid
)
def test_time_correlations_use_the_longest_regular_block(frames, kept):
    block, note = equally_spaced_block(wannier_frames(frames))
    assert block["frame"].values.tolist() == kept
    assert (note == "") == (kept == frames)
    if note:
        assert str(kept) in note


def test_frame_indices_are_equally_spaced_and_inside_the_run():
    assert frame_indices({"n_frames": 4, "first_frame": 2, "frame_stride": 3}, 100) == [2, 5, 8, 11]
    assert frame_indices({"n_frames": 4, "first_frame": 2, "frame_stride": 3}, 9) == [2, 5, 8]
    with pytest.raises(DemoError, match="n_frames and frame_stride must be"):
        frame_indices({"n_frames": 2, "frame_stride": 0}, 100)


def test_spread_frames_join_the_regular_block_once_each():
    spec = {"n_frames": 4, "first_frame": 200, "frame_stride": 10,
            "spread": {"n_frames": 5, "first_frame": 20, "frame_stride": 70}}
    assert frame_indices(spec, 401) == [20, 90, 160, 200, 210, 220, 230, 300]
    assert frame_indices(spec, 215) == [20, 90, 160, 200, 210]   # the run's length cuts both sets
    # the DFT time correlations still use the regular block (230 continues it)
    block, note = equally_spaced_block(wannier_frames(frame_indices(spec, 401)))
    assert block["frame"].values.tolist() == [200, 210, 220, 230] and "lone-pair model" in note


def test_the_demo_protocol_labels_a_block_and_spread_frames():
    from agi_data.demo.pipeline import demo_settings

    frames = frame_indices(demo_settings("demo")["wannier"], 401)
    assert len(frames) == 8 and min(frames) < 100 and max(frames) >= 300
