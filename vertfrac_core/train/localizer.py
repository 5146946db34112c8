"""`vertfrac train localizer`: train the 3D centre-line network on phantoms rendered on the fly.

Phantoms are rendered straight to the 4 mm grid (no DICOM) into a rolling cache; every step
draws random crops (fields of view from a few vertebrae to the whole column, off-spine crops as
negatives) with intensity, noise and field-of-view augmentation. Training seeds start at
``seed_base`` (1,000,000 by default), far from the evaluation seeds. Checkpoints every
``checkpoint_every`` steps allow ``--resume``; the loss log is a CSV beside them.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
SPACING_MM = 4.0


@dataclass(frozen=True)
class LocalizerTrainSettings:
    out_dir: str
    steps: int = 1000
    batch: int = 2
    crop: tuple[int, int, int] = (48, 40, 40)
    lr: float = 2e-3
    cache_size: int = 48
    refresh_every: int = 5
    seed_base: int = 1_000_000
    checkpoint_every: int = 100
    width: int = 8
    arch: str = "patch"  # the shipped one; see vertfrac_core.localize.net.ARCHITECTURES
    threads: int = 1
    init_from: str | None = None  # start from these weights (a fresh schedule)


@dataclass
class _Sample:
    data: np.ndarray  # (Z, Y, X) HU
    heat: np.ndarray
    off: np.ndarray
    mask: np.ndarray
    spine_zyx: np.ndarray  # (N, 3) indices of the centre line


def render_training_sample(seed: int) -> _Sample:
    """One phantom rendered on the 4 mm grid with its encoded centre-line target."""
    from vertfrac_core.localize.codec import encode, smooth_centre_line
    from vertfrac_core.localize.grid import CanonicalGrid
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.render import render_coarse
    from vertfrac_core.phantom.spine import build_phantom

    rng = np.random.default_rng(seed)
    ph = build_phantom(sample_patient(seed))
    z = [v.origin_lps[2] for v in ph.vertebrae]
    vol = render_coarse(ph, SPACING_MM, (min(z) - 120.0, max(z) + 60.0), seed=seed,
                        noise_hu=float(rng.uniform(3.0, 30.0)),
                        contrast=bool(rng.random() < 0.5), half_width_mm=float(rng.uniform(180, 240)))
    # coarse grid is HFS: index (i, j, k) -> x, y, -z; canonical wants [z, y, x] with z ascending
    data = np.ascontiguousarray(vol.hu[::-1])
    k = vol.shape[0]
    origin = vol.affine_lps[:3, 3] + vol.affine_lps[:3, 2] * (k - 1)
    grid = CanonicalGrid(data=data, spacing_zyx=np.full(3, SPACING_MM), origin_lps=origin)
    centres = np.array([v.center_lps for v in ph.vertebrae])
    line = smooth_centre_line(centres)
    heat, off, mask = encode(grid, line)
    return _Sample(data, heat, off, mask, grid.lps_to_index(line[::10]))


def _crop(s: _Sample, size: tuple[int, int, int], rng: np.random.Generator):
    shape = np.array(s.data.shape)
    size_a = np.array(size)
    if rng.random() < 0.85:  # centred near the column
        c = s.spine_zyx[rng.integers(len(s.spine_zyx))] + rng.normal(0, [6, 4, 4])
    else:
        c = rng.uniform([0, 0, 0], shape)
    lo = np.round(c - size_a / 2).astype(int)
    out = [np.full((*size,), -1024.0, np.float32), np.zeros(size, np.float32),
           np.zeros((3, *size), np.float32), np.zeros(size, bool)]
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(lo + size_a, shape)
    if np.any(src_hi <= src_lo):
        return out
    dst_lo = src_lo - lo
    dst_hi = dst_lo + (src_hi - src_lo)
    ss = tuple(slice(a, b) for a, b in zip(src_lo, src_hi, strict=True))
    ds = tuple(slice(a, b) for a, b in zip(dst_lo, dst_hi, strict=True))
    out[0][ds] = s.data[ss]
    out[1][ds] = s.heat[ss]
    out[2][(slice(None), *ds)] = s.off[(slice(None), *ss)]
    out[3][ds] = s.mask[ss]
    # field-of-view truncation in z (a scan that ends mid-column) and a reconstruction circle
    if rng.random() < 0.3:
        cut = int(rng.integers(8, size[0] - 8))
        sl = slice(cut, None) if rng.random() < 0.5 else slice(None, cut)
        for a in out[:2]:
            a[sl] = -1024.0 if a is out[0] else 0.0
        out[2][:, sl] = 0.0
        out[3][sl] = False
    if rng.random() < 0.25:  # a tight reconstruction around the column (spine-targeted FOV)
        half = rng.uniform(7, 20, 2)  # voxels: 56-160 mm wide
        cy, cx = np.array(size[1:]) / 2 + rng.normal(0, 3, 2)
        yy, xx = np.meshgrid(np.arange(size[1]), np.arange(size[2]), indexing="ij")
        outside = (np.abs(yy - cy) > half[0]) | (np.abs(xx - cx) > half[1])
        out[0][:, outside] = -1024.0
        out[1][:, outside] = 0.0
        out[2][:, :, outside] = 0.0
        out[3][:, outside] = False
    elif rng.random() < 0.2:
        yy, xx = np.meshgrid(np.arange(size[1]), np.arange(size[2]), indexing="ij")
        r = rng.uniform(0.35, 0.6) * size[1]
        cy, cx = rng.uniform(0.3, 0.7, 2) * np.array(size[1:])
        outside = (yy - cy) ** 2 + (xx - cx) ** 2 > r * r
        out[0][:, outside] = -1024.0
        out[1][:, outside] = 0.0
        out[2][:, :, outside] = 0.0
        out[3][:, outside] = False
    # intensity and noise augmentation
    a, b = rng.uniform(0.9, 1.1), rng.uniform(-25, 25)
    out[0] = out[0] * a + b + rng.normal(0, rng.uniform(0, 20), size).astype(np.float32)
    return out


def train_localizer(settings: LocalizerTrainSettings, resume: bool = False) -> Path:
    """Train; returns the path of the final weights file in ``out_dir``."""
    import torch

    from vertfrac_core.localize.net import LocalizerNet, hu_to_input

    torch.set_num_threads(settings.threads)
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = LocalizerNet(settings.width, settings.arch)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=settings.steps,
                                                pct_start=0.05)
    step, next_seed = 0, settings.seed_base
    ckpt = out / "checkpoint.pt"
    if settings.init_from:
        # every tensor whose name and shape match (another architecture shares its inner levels)
        src = torch.load(settings.init_from, weights_only=False)["model"]
        own = net.state_dict()
        same = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
        net.load_state_dict(same, strict=False)
        log.info("initialised %d of %d tensors from %s", len(same), len(own), settings.init_from)
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step, next_seed = state["step"], state["next_seed"]
        log.info("resumed at step %d", step)
    rng = np.random.default_rng(settings.seed_base + step)
    cache: deque[_Sample] = deque(maxlen=settings.cache_size)
    t0 = time.time()
    while len(cache) < min(settings.cache_size, 16):
        cache.append(render_training_sample(next_seed))
        next_seed += 1
    log.info("initial cache of %d phantoms in %.0f s", len(cache), time.time() - t0)
    log_path = out / "loss_log.csv"
    new_log = not (resume and log_path.exists())
    with open(log_path, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_log:
            writer.writerow(["step", "loss", "heat_loss", "offset_loss", "lr", "elapsed_s", "cache"])
        net.train()
        while step < settings.steps:
            if step % settings.refresh_every == 0:
                cache.append(render_training_sample(next_seed))
                next_seed += 1
            xs, hs, os_, ms = [], [], [], []
            for _ in range(settings.batch):
                d, h, o, m = _crop(cache[int(rng.integers(len(cache)))], settings.crop, rng)
                xs.append(hu_to_input(d))
                hs.append(h)
                os_.append(o)
                ms.append(m)
            x = torch.from_numpy(np.stack(xs))
            h = torch.from_numpy(np.stack(hs))[:, None]
            o = torch.from_numpy(np.stack(os_))
            m = torch.from_numpy(np.stack(ms))[:, None].float()
            y = net(x)
            w = 1.0 + 20.0 * h
            heat_loss = torch.nn.functional.binary_cross_entropy_with_logits(y[:, :1], h, weight=w)
            off_loss = (torch.abs(y[:, 1:] - o) * m).sum() / (3 * m.sum() + 1.0)
            loss = heat_loss + 2.0 * off_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 10 == 0:
                writer.writerow([step, f"{loss.item():.5f}", f"{heat_loss.item():.5f}",
                                 f"{off_loss.item():.5f}", f"{sched.get_last_lr()[0]:.2e}",
                                 f"{time.time() - t0:.0f}", len(cache)])
                fh.flush()
            if step % settings.checkpoint_every == 0 or step == settings.steps:
                torch.save({"model": net.state_dict(), "opt": opt.state_dict(),
                            "sched": sched.state_dict(), "step": step, "next_seed": next_seed},
                           ckpt)
                log.info("step %d loss %.4f (heat %.4f offset %.4f)", step, loss.item(),
                         heat_loss.item(), off_loss.item())
    weights = out / "localizer.pt"
    torch.save({"model": net.state_dict(), "width": settings.width, "arch": settings.arch,
                "spacing_mm": SPACING_MM,
                "steps": step, "phantoms_seen": next_seed - settings.seed_base}, weights)
    (out / "train_settings.json").write_text(json.dumps(
        {**asdict(settings), "train_seconds": round(time.time() - t0),
         "phantoms_seen": next_seed - settings.seed_base}, indent=1))
    return weights
