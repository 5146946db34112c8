"""`vertfrac train detector`: train the 2D keypoint detector on straightened phantom images.

Samples (:func:`vertfrac_core.detect.sample.render_detector_sample`) are rendered into a folder
of ``.npz`` files by :func:`generate_samples` (which can run beside training and keeps adding
files); training draws random crops of them with intensity and noise augmentation. Training seeds
start at 2,000,000 (evaluation uses small seeds).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vertfrac_core.reformat import ReformatSettings

log = logging.getLogger(__name__)


def sample_voxel_mm(seed: int, coarse_share: float) -> float | None:
    """The isotropic voxel (1.5-3 mm) a training sample of ``seed`` is resampled to, for a
    ``coarse_share`` of the seeds; None (the scanner's own grid) for the rest."""
    r = np.random.default_rng([seed, 11])
    return float(r.uniform(1.5, 3.0)) if r.random() < coarse_share else None


def generate_samples(out_dir: str, seed_start: int = 2_000_000, n: int = 200, enrich: bool = False,
                     coarse_share: float = 0.0) -> int:
    """Render ``n`` detector samples into ``out_dir`` (skips files already there); a
    ``coarse_share`` of them on isotropic 1.5-3 mm grids (:func:`sample_voxel_mm`)."""
    from vertfrac_core.detect.sample import render_detector_sample

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = 0
    for seed in range(seed_start, seed_start + n):
        path = out / f"sample_{seed}.npz"
        if path.exists():
            continue
        render_detector_sample(seed, enrich=enrich, voxel_mm=sample_voxel_mm(seed, coarse_share)).save(path)
        made += 1
    return made


@dataclass(frozen=True)
class DetectorTrainSettings:
    data_dir: str
    out_dir: str
    steps: int = 1200
    batch: int = 3
    crop_rows: int = 160
    lr: float = 2e-3
    width: int = 12
    checkpoint_every: int = 100
    threads: int = 1
    init_from: str | None = None
    strong_augment: bool = False  # scanner-look augmentation (:func:`_scanner_look`)
    # size augmentation (:func:`_zoom`): this share of crops is scaled by a factor drawn from
    # ``zoom_range``, so that bodies larger or smaller than the phantoms' are not pulled to theirs
    zoom_share: float = 0.0
    zoom_range: tuple[float, float] = (0.85, 1.3)


def _load(path: Path) -> dict:
    z = np.load(path)
    return {k: z[k] for k in z.files}


def _scanner_look(img: np.ndarray, rng: np.random.Generator, strong: bool) -> np.ndarray:
    """With ``strong``, make the phantom look like other scanners and patients: blur (thick
    slices, soft kernels: more along the rows), a dimmer cortex (compressed above 250 HU) and a
    darker or brighter trabecular bone (HU between 80 and 350 shifted)."""
    if not strong:
        return img
    from scipy.ndimage import gaussian_filter

    out = img
    if rng.random() < 0.6:
        sr, sc = rng.uniform(0.3, 1.8), rng.uniform(0.2, 1.0)
        out = np.stack([gaussian_filter(ch, (sr, sc)) for ch in out])
    if rng.random() < 0.6:
        k = rng.uniform(0.4, 1.0)
        out = np.where(out > 250.0, 250.0 + (out - 250.0) * k, out)
    if rng.random() < 0.5:
        shift = rng.uniform(-90.0, 40.0)
        w = np.clip((out - 80.0) / 40.0, 0, 1) * np.clip((350.0 - out) / 60.0, 0, 1)
        out = out + shift * w
    return out.astype(np.float32)


#: the column of the straightened image that holds the centre line
LINE_COL = ReformatSettings().line_col


def _zoom(img: np.ndarray, kp: np.ndarray, centres: np.ndarray, f: float):
    """The straightened image scaled by ``f`` about the top row and the line's column (the same
    columns: scaled content beyond them is cut, missing content is air), with its keypoints and
    centres: a patient whose bodies are ``f`` times the phantom's size."""
    from scipy.ndimage import map_coordinates

    h, w = img.shape[1:]
    rr, cc = np.meshgrid(np.arange(int(round(h * f))) / f, LINE_COL + (np.arange(w) - LINE_COL) / f, indexing="ij")
    out = np.stack([map_coordinates(ch, [rr, cc], order=1, cval=-1024.0) for ch in img]).astype(np.float32)

    def scale(p):
        return np.stack([p[..., 0] * f, LINE_COL + (p[..., 1] - LINE_COL) * f], axis=-1)

    return out, scale(kp), scale(centres)


def _crop(s: dict, rows: int, rng: np.random.Generator, strong: bool = False,
          zoom_share: float = 0.0, zoom_range: tuple[float, float] = (0.85, 1.3)):
    from vertfrac_core.detect.codec import encode

    img = s["image"].astype(np.float32)
    kp0, c0 = s["keypoints"], s["centres"]
    if zoom_share > 0 and rng.random() < zoom_share:
        img, kp0, c0 = _zoom(img, kp0, c0, float(rng.uniform(*zoom_range)))
    h = img.shape[1]
    if h > rows:
        r0 = int(rng.integers(0, h - rows + 1))
    else:
        r0 = 0
        img = np.pad(img, ((0, 0), (0, rows - h), (0, 0)), constant_values=-1024.0)
    img = img[:, r0:r0 + rows]
    kp = kp0 - np.array([r0, 0.0])
    c = c0 - np.array([r0, 0.0])
    keep = (c[:, 0] >= 0) & (c[:, 0] < rows)
    if rng.random() < 0.3:  # the image ends mid-column: blank the rows beyond a cut
        cut = int(rng.integers(rows // 4, 3 * rows // 4))
        if rng.random() < 0.5:
            img[:, cut:] = -1024.0
            keep &= c[:, 0] < cut - 4
        else:
            img[:, :cut] = -1024.0
            keep &= c[:, 0] > cut + 4
    img = _scanner_look(img, rng, strong)
    a, b = rng.uniform(0.85, 1.15), rng.uniform(-40, 40)
    img = img * a + b + rng.normal(0, rng.uniform(0, 30), img.shape).astype(np.float32)
    levels = [str(x) for x, k in zip(s["levels"], keep, strict=True) if k]
    t = encode(img.shape[1:], c[keep], kp[keep], levels)
    return img, t


def _focal(pred_logit, target):
    import torch

    p = torch.sigmoid(pred_logit).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1.0) | (target > 0.98)
    neg_w = (1 - target) ** 4
    pos_loss = -(torch.log(p) * (1 - p) ** 2)[pos].sum()
    neg_loss = -(torch.log(1 - p) * p**2 * neg_w)[~pos].sum()
    n = pos.sum().clamp(min=1)
    return (pos_loss + neg_loss) / n


def train_detector(settings: DetectorTrainSettings, resume: bool = False) -> Path:
    import torch

    from vertfrac_core.detect.net import DetectorNet, image_to_input

    torch.set_num_threads(settings.threads)
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = DetectorNet(settings.width)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=settings.steps,
                                                pct_start=0.05)
    step = 0
    ckpt = out / "checkpoint.pt"
    if settings.init_from:
        net.load_state_dict(torch.load(settings.init_from, weights_only=False)["model"])
    if resume and ckpt.exists():
        st = torch.load(ckpt, weights_only=False)
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        step = st["step"]
    rng = np.random.default_rng(step + 7)
    data_dir = Path(settings.data_dir)
    cache: dict[Path, dict] = {}
    t0 = time.time()
    log_path = out / "loss_log.csv"
    with open(log_path, "a", newline="") as fh:
        w = csv.writer(fh)
        if not resume:
            w.writerow(["step", "loss", "heat", "reg", "level", "lr", "elapsed_s", "samples"])
        net.train()
        while step < settings.steps:
            if step % 25 == 0:
                for p in sorted(data_dir.glob("sample_*.npz")):
                    if p not in cache:
                        cache[p] = _load(p)
                if not cache:
                    raise FileNotFoundError(f"no detector samples in {data_dir}; run generate_samples")
            keys = list(cache)
            imgs, ts = [], []
            for _ in range(settings.batch):
                img, t = _crop(cache[keys[int(rng.integers(len(keys)))]], settings.crop_rows, rng,
                               settings.strong_augment, settings.zoom_share, settings.zoom_range)
                imgs.append(image_to_input(img))
                ts.append(t)
            x = torch.from_numpy(np.stack(imgs))
            heat = torch.from_numpy(np.stack([t["heat"] for t in ts]))
            reg = torch.from_numpy(np.stack([t["reg"] for t in ts]))
            rmask = torch.from_numpy(np.stack([t["reg_mask"] for t in ts]))
            lvl = torch.from_numpy(np.stack([t["level"] for t in ts]))
            y = net(x)
            y = y[:, :, : heat.shape[1], : heat.shape[2]]
            l_heat = _focal(y[:, 0], heat)
            m = rmask[:, None]
            l_reg = (torch.abs(y[:, 1:15] - reg) * m).sum() / (14 * m.sum() + 1.0)
            l_lvl = torch.nn.functional.cross_entropy(y[:, 15:], lvl, ignore_index=-1) if (lvl >= 0).any() else y.sum() * 0
            loss = l_heat + 5.0 * l_reg + 0.5 * l_lvl
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 10 == 0:
                w.writerow([step, f"{loss.item():.4f}", f"{l_heat.item():.4f}", f"{l_reg.item():.4f}",
                            f"{l_lvl.item():.4f}", f"{sched.get_last_lr()[0]:.2e}", f"{time.time() - t0:.0f}", len(cache)])
                fh.flush()
            if step % settings.checkpoint_every == 0 or step == settings.steps:
                torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                            "step": step}, ckpt)
                log.info("step %d loss %.3f heat %.3f reg %.4f level %.3f", step, loss.item(),
                         l_heat.item(), l_reg.item(), l_lvl.item())
    weights = out / "detector.pt"
    torch.save({"model": net.state_dict(), "width": settings.width, "steps": step,
                "samples": len(cache)}, weights)
    (out / "train_settings.json").write_text(json.dumps(
        {**asdict(settings), "train_seconds": round(time.time() - t0), "samples": len(cache)}, indent=1))
    return weights
