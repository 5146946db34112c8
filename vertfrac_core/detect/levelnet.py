"""Level identification with the whole column in view: a small CNN collapses each row of the
straightened image (at 4 mm) into a feature vector and a bidirectional GRU reads the rows from
head to feet, so every row's level can depend on landmarks far away (the neck, the last rib, the
sacrum) -- which a detector that sees only a few vertebrae cannot know. Output: per row, the
probability of each level (or of no vertebral body)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vertfrac_core.anatomy import GRADED_LEVELS

POOL = 4  # image pixels (mm) per row of the sequence
N_CLASSES = len(GRADED_LEVELS) + 1  # last class: no vertebral body (disc, outside)


def downsample(image: np.ndarray) -> np.ndarray:
    """(C, H, W) HU -> (C, H/4, W/4) network input (windowed, average pooled)."""
    from vertfrac_core.detect.net import image_to_input

    x = torch.from_numpy(image_to_input(image))[None]
    return torch.nn.functional.avg_pool2d(x, POOL, ceil_mode=True)[0].numpy()


class LevelNet(nn.Module):
    def __init__(self, width: int = 24, hidden: int = 64) -> None:
        super().__init__()
        w = width

        def blk(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                                 nn.MaxPool2d((1, 2)))

        self.enc = nn.Sequential(blk(4, w), blk(w, 2 * w), blk(2 * w, 2 * w),
                                 nn.Conv2d(2 * w, 2 * w, (5, 1), padding=(2, 0)), nn.ReLU(inplace=True))
        self.gru = nn.GRU(2 * w, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, R, W) -> (B, R, N_CLASSES) logits."""
        f = self.enc(x).mean(dim=3).transpose(1, 2)  # (B, R, F)
        h, _ = self.gru(f)
        return self.out(h)


def row_labels(n_rows: int, keypoints_rc: np.ndarray, levels: list[str]) -> np.ndarray:
    """Per sequence row (4 mm): level index inside a body, background elsewhere."""
    lab = np.full(n_rows, N_CLASSES - 1, np.int64)
    for kp, lv in zip(keypoints_rc, levels, strict=True):
        if lv not in GRADED_LEVELS:
            continue
        r0 = int(np.ceil(kp[:, 0].min() / POOL))
        r1 = int(np.floor(kp[:, 0].max() / POOL))
        lab[max(r0, 0):max(min(r1 + 1, n_rows), 0)] = GRADED_LEVELS.index(lv)
    return lab


def level_probs_at(row_probs: np.ndarray, keypoints_rc: np.ndarray) -> np.ndarray:
    """Level distribution of one detected body: mean of its rows' level probabilities."""
    r0 = int(np.clip(np.floor(keypoints_rc[:, 0].min() / POOL), 0, len(row_probs) - 1))
    r1 = int(np.clip(np.ceil(keypoints_rc[:, 0].max() / POOL), r0 + 1, len(row_probs)))
    p = row_probs[r0:r1, : N_CLASSES - 1].mean(axis=0)
    return p / max(p.sum(), 1e-9)
