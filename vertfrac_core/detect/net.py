"""The 2D detector network: a U-Net encoder to stride 16, decoded to stride 2, with one head
(heatmap logit, centre offset, 6 keypoint offsets, level logits)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vertfrac_core.detect.codec import N_OUT

IN_CHANNELS = 4


def image_to_input(img: np.ndarray) -> np.ndarray:
    """(4, H, W) HU -> network input: the slabs in a bone window, the wide MIP in another."""
    x = np.asarray(img, dtype=np.float32)
    out = np.empty_like(x)
    out[:3] = np.clip((x[:3] - 250.0) / 400.0, -1.5, 3.0)
    out[3] = np.clip((x[3] - 400.0) / 400.0, -1.5, 3.0)
    return out


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class DetectorNet(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.e0 = _block(IN_CHANNELS, w)  # stride 1
        self.e1 = _block(w, 2 * w, 2)  # 2
        self.e2 = _block(2 * w, 4 * w, 2)  # 4
        self.e3 = _block(4 * w, 6 * w, 2)  # 8
        self.e4 = _block(6 * w, 8 * w, 2)  # 16
        self.d3 = _block(8 * w + 6 * w, 6 * w)
        self.d2 = _block(6 * w + 4 * w, 4 * w)
        self.d1 = _block(4 * w + 2 * w, 3 * w)
        self.head = nn.Sequential(nn.Conv2d(3 * w, 3 * w, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(3 * w, N_OUT, 1))
        with torch.no_grad():
            self.head[-1].bias[0] = -2.2  # heatmap prior (CenterNet)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.e0(x)
        e1 = self.e1(e0)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        e4 = self.e4(e3)
        d3 = self.d3(torch.cat([self._up(e4, e3), e3], 1))
        d2 = self.d2(torch.cat([self._up(d3, e2), e2], 1))
        d1 = self.d1(torch.cat([self._up(d2, e1), e1], 1))
        return self.head(d1)
