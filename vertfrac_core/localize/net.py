"""A small 3D U-Net for the coarse grid: input 2 HU windows, output a centre-line heatmap (logit)
and a 3-vector offset to the nearest centre-line point (in units of 10 mm).

Two architectures share the inner levels: ``"full"`` (the first shipped one) convolves at the
grid's full 4 mm resolution on the way in and out; ``"patch"`` enters through a 2x2x2 patch
convolution and predicts at 8 mm, its four output maps interpolated back to the 4 mm grid, so no
feature map of full size is ever made (about 3x cheaper on CPU; the offsets keep the line
sub-voxel)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

IN_CHANNELS = 2
OUT_CHANNELS = 4  # heat logit, dx, dy, dz (LPS, /10 mm)


def hu_to_input(hu: np.ndarray) -> np.ndarray:
    """(Z, Y, X) HU -> (2, Z, Y, X) float32: a bone window and a soft-tissue window."""
    hu = np.asarray(hu, dtype=np.float32)
    bone = np.clip((hu - 250.0) / 400.0, -1.5, 3.0)
    soft = np.clip(hu / 300.0, -3.4, 1.5)
    return np.stack([bone, soft])


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.InstanceNorm3d(cout, affine=True),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=False), nn.InstanceNorm3d(cout, affine=True),
        nn.LeakyReLU(0.1, inplace=True),
    )


ARCHITECTURES = ("full", "patch")


def cells_to_grid(cells: torch.Tensor, size) -> torch.Tensor:
    """Maps on 2x2x2 cells of a grid -> maps on the grid (``size``, twice the cells').

    A cell's centre sits half a voxel inside its patch; trilinear interpolation without
    corner alignment puts it there exactly (a linear field comes back unchanged)."""
    return nn.functional.interpolate(cells, size=tuple(size), mode="trilinear", align_corners=False)


class LocalizerNet(nn.Module):
    """U-Net with 3 poolings (receptive field ~ 30 voxels = 12 cm at 4 mm)."""

    def __init__(self, width: int = 8, arch: str = "full") -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown localizer architecture {arch!r}; known: {ARCHITECTURES}")
        self.arch = arch
        w = width
        if arch == "patch":  # full resolution -> 8 mm in one learned step, no full-size maps
            self.stem = nn.Sequential(nn.Conv3d(IN_CHANNELS, w, 2, stride=2, bias=False),
                                      nn.InstanceNorm3d(w, affine=True), nn.LeakyReLU(0.1, inplace=True))
        else:
            self.enc0 = _block(IN_CHANNELS, w)
        # the inner levels, shared by both (names kept: weights load across architectures)
        self.enc1 = _block(w, 2 * w)
        self.enc2 = _block(2 * w, 4 * w)
        self.enc3 = _block(4 * w, 6 * w)
        self.pool = nn.MaxPool3d(2, ceil_mode=True)
        self.dec2 = _block(6 * w + 4 * w, 4 * w)
        self.dec1 = _block(4 * w + 2 * w, 2 * w)
        if arch == "patch":
            self.head = nn.Conv3d(2 * w, OUT_CHANNELS, 1)
        else:
            self.dec0 = nn.Sequential(nn.Conv3d(2 * w + w, w, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
            self.head = nn.Conv3d(w, OUT_CHANNELS, 1)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, size=like.shape[2:], mode="trilinear", align_corners=False)

    def _inner(self, e1: torch.Tensor) -> torch.Tensor:
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self._up(e3, e2), e2], 1))
        return self.dec1(torch.cat([self._up(d2, e1), e1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.arch == "patch":
            # odd sizes: repeat the last slice to make them even, so that the patches tile the grid
            pad = [0, x.shape[4] % 2, 0, x.shape[3] % 2, 0, x.shape[2] % 2]
            xp = nn.functional.pad(x, pad, mode="replicate") if any(pad) else x
            y = cells_to_grid(self.head(self._inner(self.enc1(self.stem(xp)))), xp.shape[2:])
            return y[:, :, :x.shape[2], :x.shape[3], :x.shape[4]]
        e0 = self.enc0(x)
        d1 = self._inner(self.enc1(self.pool(e0)))
        return self.head(self.dec0(torch.cat([self._up(d1, e0), e0], 1)))
