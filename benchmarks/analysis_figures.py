"""The verifiable pictures committed under docs/: `vertfrac analyze` of a fractured phantom and of
the real VerSe'19 subject 005 (CC BY-SA 4.0), with the shipped weights."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import DOCS, SHARED_DATA


def _fractured_phantom_volume():
    from dataclasses import replace

    from vertfrac_core.morphometry import DeformityType
    from vertfrac_core.phantom.acquisition import FieldOfView, sample_acquisition
    from vertfrac_core.phantom.population import FractureSpec, sample_patient
    from vertfrac_core.phantom.render import render_ct
    from vertfrac_core.phantom.spine import build_phantom

    spec = replace(sample_patient(42), fractures=(
        FractureSpec("T12", DeformityType.WEDGE, 0.34), FractureSpec("L2", DeformityType.BICONCAVE, 0.45)))
    ph = build_phantom(spec)
    acq = sample_acquisition(ph, np.random.default_rng(42), "full", fov=FieldOfView.ABDOMEN)
    return render_ct(ph, acq, seed=42), ph


def main() -> None:
    from vertfrac_core.analyze import analyze_path, analyze_volume, load_models

    models = load_models()
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        vol, ph = _fractured_phantom_volume()
        res = analyze_volume(vol, source="phantom 42", models=models, out_dir=Path(tmp) / "ph")
        shutil.copy(Path(tmp) / "ph" / "sagittal.png", DOCS / "analyze_phantom_fractures.png")
        truth = ", ".join(f"{t.level} grade {int(t.grading.grade)} {t.grading.type.value}"
                          for t in ph.truth if t.grading.grade > 0)
        found = ", ".join(f"{v.level} grade {v.grade} {v.type}" for v in res.vertebrae if v.grade > 0)
        print(f"phantom 42 truth: {truth}; found: {found or 'none'}")
        res = analyze_path(str(SHARED_DATA / "real/verse/sub-verse005_ct.nii.gz"), Path(tmp) / "v5", models)
        shutil.copy(Path(tmp) / "v5" / "sagittal.png", DOCS / "analyze_verse005.png")
        print("verse005:", [(v.level, v.grade, v.type, v.ha_mm, v.hm_mm, v.hp_mm) for v in res.vertebrae])


if __name__ == "__main__":
    main()
