"""A small 3D U-Net for the coarse grid: input 2 HU windows, output a centre-line heatmap (logit)
and a 3-vector offset to the nearest centre-line point (in units of 10 mm)."""

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


class LocalizerNet(nn.Module):
    """U-Net with 3 poolings (receptive field ~ 30 voxels = 12 cm at 4 mm)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        w = width
        self.enc0 = _block(IN_CHANNELS, w)
        self.enc1 = _block(w, 2 * w)
        self.enc2 = _block(2 * w, 4 * w)
        self.enc3 = _block(4 * w, 6 * w)
        self.pool = nn.MaxPool3d(2, ceil_mode=True)
        self.dec2 = _block(6 * w + 4 * w, 4 * w)
        self.dec1 = _block(4 * w + 2 * w, 2 * w)
        self.dec0 = nn.Sequential(nn.Conv3d(2 * w + w, w, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.head = nn.Conv3d(w, OUT_CHANNELS, 1)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, size=like.shape[2:], mode="trilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(x)
        e1 = self.enc1(self.pool(e0))
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self._up(e3, e2), e2], 1))
        d1 = self.dec1(torch.cat([self._up(d2, e1), e1], 1))
        d0 = self.dec0(torch.cat([self._up(d1, e0), e0], 1))
        return self.head(d0)
