"""`make figures`: a phantom next to real CT (VerSe 005, TotalSegmentator example) at one window.

Writes docs/phantom_vs_real.png: mid-sagittal (through the column) and axial (through L3, or the
nearest lumbar level in view) views, 1 mm sampling, window [-250, 1250] HU for every panel.
"""

from __future__ import annotations

import logging

import numpy as np

from benchmarks._common import DOCS, SHARED_DATA

log = logging.getLogger(__name__)
WINDOW = (-250.0, 1250.0)


def _real_case(ct: str, mask: str, lumbar_labels: dict[int, str]):
    from vertfrac_core.nifti import load_nifti, load_nifti_array
    from vertfrac_core.volume import Volume

    vol = load_nifti(str(SHARED_DATA / ct))
    lab, aff = load_nifti_array(str(SHARED_DATA / mask))
    lv = Volume(hu=lab, affine_lps=aff)
    centres = {}
    for value, name in lumbar_labels.items():
        kji = np.argwhere(lab == value)
        if len(kji) > 500:
            centres[name] = lv.voxel_to_lps(kji[:, ::-1].astype(float)).mean(axis=0)
    return vol, centres


def _phantom_case(seed: int):
    from vertfrac_core.phantom.acquisition import FieldOfView, sample_acquisition
    from vertfrac_core.phantom.population import sample_patient
    from vertfrac_core.phantom.render import render_ct
    from vertfrac_core.phantom.spine import build_phantom

    ph = build_phantom(sample_patient(seed))
    acq = sample_acquisition(ph, np.random.default_rng(seed), "full", fov=FieldOfView.ABDOMEN)
    vol = render_ct(ph, acq, seed)
    centres = {t.level: t.center_lps for t in ph.truth if t.level.startswith("L")}
    return vol, centres


def _views(vol, centres):
    from vertfrac_core.resample import axial_slice, sagittal_slice

    lv = "L3" if "L3" in centres else sorted(centres)[len(centres) // 2]
    c = centres[lv]
    allc = np.array(list(centres.values()))
    x = float(np.median(allc[:, 0]))
    sag = sagittal_slice(vol, x, (c[1] - 140, c[1] + 100), (c[2] - 120, c[2] + 120))
    ax = axial_slice(vol, float(c[2]), (c[0] - 150, c[0] + 150), (c[1] - 160, c[1] + 100))
    return sag, ax, lv


def main(seed: int = 7) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [
        (f"phantom (seed {seed})", *_phantom_case(seed)),
        ("VerSe'19 sub-verse005", *_real_case(
            "real/verse/sub-verse005_ct.nii.gz", "real/verse/sub-verse005_seg-vert_msk.nii.gz",
            {20: "L1", 21: "L2", 22: "L3", 23: "L4", 24: "L5"})),
        ("TotalSegmentator example", *_real_case(
            "real/totalseg/example_ct.nii.gz", "real/totalseg/example_vertebrae.nii.gz",
            {31: "L1", 30: "L2", 29: "L3", 28: "L4", 27: "L5"})),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 10), facecolor="black")
    for col, (title, vol, centres) in enumerate(cases):
        sag, ax, lv = _views(vol, centres)
        axes[0, col].imshow(sag, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1])
        axes[0, col].set_title(f"{title}\nmid-sagittal (anterior left)", color="white", fontsize=10)
        axes[1, col].imshow(ax, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1])
        axes[1, col].set_title(f"axial through {lv}", color="white", fontsize=10)
        for a in axes[:, col]:
            a.axis("off")
    fig.suptitle(f"Same window [{WINDOW[0]:.0f}, {WINDOW[1]:.0f}] HU, 1 mm sampling. Real CT: VerSe'19 "
                 "(CC BY-SA 4.0), TotalSegmentator (Apache-2.0)", color="white", fontsize=9)
    DOCS.mkdir(exist_ok=True)
    out = DOCS / "phantom_vs_real.png"
    fig.tight_layout()
    fig.savefig(out, dpi=80, facecolor="black")
    log.info("wrote %s", out)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
