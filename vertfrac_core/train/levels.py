"""`vertfrac train levels`: the row-sequence level network on the detector's samples (whole
straightened images at 4 mm, with random fields of view)."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def narrow_fov(x: np.ndarray, rng: np.random.Generator, p_front: float = 0.3, p_back: float = 0.15) -> np.ndarray:
    """A spine-centred reconstruction (a small field of view, as in VerSe-style crops): air
    (-1.5 in the network's window) in front of a cut 38-62 mm anterior of the centre line (the
    bodies' front walls lie 15-30 mm anterior of it), and behind one 40-80 mm posterior of it,
    each tilted by up to 11 degrees. ``x``: (C, R, W) at :data:`POOL` mm, columns from
    :class:`~vertfrac_core.reformat.ReformatSettings`' ``anterior_mm`` in front of the line."""
    from vertfrac_core.detect.levelnet import POOL
    from vertfrac_core.reformat import ReformatSettings

    _, r, w = x.shape
    line = ReformatSettings().line_col / POOL
    rows = np.arange(r) - r / 2.0
    cols = np.arange(w)[None, :]
    out = x
    for p, lo, hi, front in ((p_front, -62.0, -38.0, True), (p_back, 40.0, 80.0, False)):
        if rng.random() >= p:
            continue
        cut = line + rng.uniform(lo, hi) / POOL + rng.uniform(-0.2, 0.2) * rows
        cut = np.clip(cut, line + lo / POOL, line + hi / POOL) if front else np.clip(cut, line + lo / POOL, None)
        air = cols < cut[:, None] if front else cols > cut[:, None]
        out = np.where(air[None], np.float32(-1.5), out)
    return out


def train_levels(data_dir: str, out_dir: str, steps: int = 1500, batch: int = 4, lr: float = 2e-3,
                 threads: int = 1, narrow: bool = False) -> Path:
    """Train the level network; with ``narrow``, some examples get a small field of view
    (:func:`narrow_fov`; tried, not in the shipped weights: see ``weights/detector.md``)."""
    import torch

    from vertfrac_core.detect.levelnet import N_CLASSES, LevelNet, downsample, row_labels

    torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = []
    for p in sorted(Path(data_dir).glob("sample_*.npz")):
        z = np.load(p)
        x = downsample(z["image"].astype(np.float32))
        y = row_labels(x.shape[1], z["keypoints"], [str(s) for s in z["levels"]])
        data.append((x, y))
    if not data:
        raise FileNotFoundError(f"no samples in {data_dir}")
    net = LevelNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    rng = np.random.default_rng(11)
    t0 = time.time()
    with open(out / "loss_log.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "loss", "acc_rows", "elapsed_s"])
        for step in range(1, steps + 1):
            xs, ys = [], []
            rows = 48 + int(rng.integers(0, 100))  # 19-59 cm of column per example
            for _ in range(batch):
                x, y = data[int(rng.integers(len(data)))]
                n = x.shape[1]
                if n > rows:
                    r0 = int(rng.integers(0, n - rows + 1))
                    x, y = x[:, r0:r0 + rows], y[r0:r0 + rows]
                else:
                    pad = rows - n
                    x = np.pad(x, ((0, 0), (0, pad), (0, 0)), constant_values=-1.5)
                    y = np.pad(y, (0, pad), constant_values=N_CLASSES - 1)
                a, b = rng.uniform(0.85, 1.15), rng.uniform(-0.1, 0.1)
                xs.append((narrow_fov(x, rng) if narrow else x) * a + b)
                ys.append(y)
            xt = torch.from_numpy(np.stack(xs).astype(np.float32))
            yt = torch.from_numpy(np.stack(ys))
            logits = net(xt)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), yt.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if step % 20 == 0:
                acc = (logits.argmax(-1) == yt).float().mean().item()
                w.writerow([step, f"{loss.item():.4f}", f"{acc:.3f}", f"{time.time() - t0:.0f}"])
                fh.flush()
    path = out / "levels.pt"
    torch.save({"model": net.state_dict(), "steps": steps, "samples": len(data)}, path)
    return path
