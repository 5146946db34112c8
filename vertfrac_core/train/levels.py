"""`vertfrac train levels`: the row-sequence level network on the detector's samples (whole
straightened images at 4 mm, with random fields of view)."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def train_levels(data_dir: str, out_dir: str, steps: int = 1500, batch: int = 4, lr: float = 2e-3,
                 threads: int = 1) -> Path:
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
                xs.append(x * a + b)
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
