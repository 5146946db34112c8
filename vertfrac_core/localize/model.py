"""Step 1 at inference: volume -> spine centre line (LPS mm, 1 mm steps, cranial first).

The network's decoded line is then moved onto the middle of the vertebral bodies it passes
through, measured from their walls in the image (``centring.py``; ``centring=None`` skips it).

The network runs once on the whole canonical 4 mm grid (fully convolutional); weights load once
per process (:func:`load_localizer`). Runs on CUDA when torch sees a GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vertfrac_core.errors import ModelError
from vertfrac_core.localize.centring import CentringSettings, centre_on_bodies
from vertfrac_core.localize.codec import CodecSettings, decode, smooth_line
from vertfrac_core.localize.grid import FILL_HU, CanonicalGrid, to_canonical
from vertfrac_core.volume import Volume

log = logging.getLogger(__name__)
WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "localizer.pt"
PAD_VOXELS = 8  # air around the field of view, as the network saw beyond crops in training


def pad_grid(grid: CanonicalGrid, n: int) -> CanonicalGrid:
    """``grid`` with ``n`` voxels of air (-1024 HU) added on every side."""
    data = np.pad(grid.data, n, mode="constant", constant_values=FILL_HU)
    origin = grid.origin_lps - (n * grid.spacing_zyx)[::-1]
    return CanonicalGrid(data=data, spacing_zyx=grid.spacing_zyx, origin_lps=origin)


@dataclass(frozen=True)
class SpineCurve:
    """Centre line through the vertebral bodies, LPS mm, every 1 mm, cranial first."""

    points_lps: np.ndarray
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def length_mm(self) -> float:
        return float(np.sum(np.linalg.norm(np.diff(self.points_lps, axis=0), axis=1)))


class Localizer:
    """The trained centre-line network and its decoder."""

    def __init__(self, weights: Path = WEIGHTS, device: str | None = None,
                 codec: CodecSettings = CodecSettings(),
                 centring: CentringSettings | None = CentringSettings()) -> None:
        import torch

        from vertfrac_core.localize.net import LocalizerNet

        if not Path(weights).exists():
            raise ModelError(f"localizer weights not found at {weights}; train them with "
                             "`vertfrac train localizer --install`")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=False)
            self.net = LocalizerNet(int(state.get("width", 8)), str(state.get("arch", "full")))
            self.net.load_state_dict(state["model"])
        except Exception as err:  # noqa: BLE001 - any failure means unusable weights
            raise ModelError(f"cannot load localizer weights {weights}: {err}") from err
        self.spacing_mm = float(state.get("spacing_mm", 4.0))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.net.to(self.device).eval()
        # channels-last on CPU helps the full-resolution network (oneDNN convolves without
        # reordering: 1.33 -> 1.13 s on a 141x115x115 grid, 2 cores) but not the patch one
        # (0.40 s contiguous against 0.45 s channels-last, same grid, alternated 5 times)
        cl = self.device == "cpu" and self.net.arch == "full"
        self.memory_format = torch.channels_last_3d if cl else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        self.codec = codec
        self.centring = centring  # None: the network's line as decoded (for evaluation)

    def heatmaps(self, volume: Volume):
        """(canonical grid, heat (Z,Y,X), offsets (3,Z,Y,X)) for ``volume``."""
        import torch

        from vertfrac_core.localize.net import hu_to_input

        grid = pad_grid(to_canonical(volume, self.spacing_mm), PAD_VOXELS)
        x = torch.from_numpy(hu_to_input(grid.data))[None].to(self.device,
                                                              memory_format=self.memory_format)
        with torch.inference_mode():
            y = self.net(x)[0].float().cpu().numpy()
        heat = 1.0 / (1.0 + np.exp(-y[0]))
        return grid, heat, y[1:]

    def __call__(self, volume: Volume) -> SpineCurve:
        """The centre line of ``volume``; raises NoSpineError when no column is visible."""
        import time

        t0 = time.perf_counter()
        grid, heat, off = self.heatmaps(volume)
        t1 = time.perf_counter()
        line = decode(grid, heat, off, self.codec)
        t2 = time.perf_counter()
        if self.centring is not None:
            line = smooth_line(centre_on_bodies(volume, line, self.centring), self.centring.line_smooth_mm)
        t3 = time.perf_counter()
        return SpineCurve(points_lps=line, timings_s={"network": t1 - t0, "decode": t2 - t1,
                                                      "centring": t3 - t2})


_CACHE: dict[tuple[str, str | None], Localizer] = {}


def load_localizer(weights: Path = WEIGHTS, device: str | None = None) -> Localizer:
    """A process-wide cached :class:`Localizer` (models load once per worker)."""
    key = (str(weights), device)
    if key not in _CACHE:
        _CACHE[key] = Localizer(weights, device)
    return _CACHE[key]
