"""One scan end to end: load, step 1 (centre line), reformat, step 2 (keypoints and levels),
morphometry (Genant), density, the verifiable picture -> :class:`ScanResult`.

Models load once per process (:func:`load_models`). Each stage is timed; a failure still gives a
``ScanResult`` naming the stage that failed and why.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vertfrac_core.errors import NoSpineError, VertfracError
from vertfrac_core.morphometry import GradingSettings, grade_spine
from vertfrac_core.result import ScanResult, ScanStatus, Stage, VertebraResult, density_flag
from vertfrac_core.volume import Volume

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Models:
    localizer: object
    detector: object
    version: str


#: bumped whenever the code that turns the networks' outputs into results changes what it
#: reports (so that rows of the former code are reprocessed like those of former weights)
#: 2: levels weighed by the anatomical context (``detect/context.py``)
#: 3: keypoint columns halfway between the walls found and the network's (``RefineSettings.wall_weight``)
#: 4: the endplate and wall edge floor rises with the image's noise (``RefineSettings.noise_z``)
RESULT_REVISION = 4


def model_version(*paths: Path) -> str:
    """A short content hash of the weights files and :data:`RESULT_REVISION`: rows carry it, a
    new model (or a revision of what the code reports) reprocesses all."""
    h = hashlib.sha256(f"result-revision {RESULT_REVISION}".encode())
    for p in paths:
        h.update(Path(p).read_bytes())
    return "vf-" + h.hexdigest()[:10]


def load_models(device: str | None = None) -> Models:
    """The shipped localizer and detector (cached per process)."""
    from vertfrac_core.detect.model import WEIGHTS as DW
    from vertfrac_core.detect.model import load_detector
    from vertfrac_core.localize.model import WEIGHTS as LW
    from vertfrac_core.localize.model import load_localizer

    files = [p for p in (LW, DW, DW.with_name("levels.pt")) if p.exists()]
    return Models(load_localizer(LW, device), load_detector(DW, device), model_version(*files))


def load_any(path: str, storage_options: dict | None = None) -> Volume:
    """A DICOM folder/zip/file (the selected series) or a NIfTI file as a Volume."""
    if path.endswith((".nii", ".nii.gz")):
        from vertfrac_core.nifti import load_nifti

        return load_nifti(path, storage_options=storage_options)
    from vertfrac_core.dicom.load import load_dicom

    return load_dicom(path, storage_options=storage_options)


def analyze_volume(volume: Volume, *, source: str, models: Models, out_dir: Path | None = None,
                   grading: GradingSettings = GradingSettings(), second_look: bool = False) -> ScanResult:
    """Analyse one loaded volume. Writes the PNG into ``out_dir`` when given. With
    ``second_look``, the reported centre line is moved onto the body centres found by step 2 and
    each body's keypoints onto its own mid-sagittal plane (:mod:`vertfrac_core.localize.refine_line`).
    Off by default since step 1 centres its line on the body walls: on held-out phantoms and on
    VerSe 005 the second look then moved the line away from the body centres
    (``weights/localizer.md``)."""
    from vertfrac_core.density import study_l1, trabecular_hu
    from vertfrac_core.detect.sample import straightened_image
    from vertfrac_core.localize.refine_line import body_lateral_offsets, refine_line
    from vertfrac_core.reformat import Reformation

    timings: dict[str, float] = {}
    stage = Stage.LOCALIZE
    t = time.perf_counter()
    try:
        curve = models.localizer(volume)  # type: ignore[operator]
        timings["localize"] = time.perf_counter() - t
        stage, t = Stage.REFORMAT, time.perf_counter()
        ref = Reformation(curve.points_lps)
        image = straightened_image(volume, ref)
        timings["reformat"] = time.perf_counter() - t
        stage, t = Stage.DETECT, time.perf_counter()
        dets = models.detector(image, ref, volume)  # type: ignore[operator]
        timings["detect"] = time.perf_counter() - t
        if not dets:
            raise NoSpineError(f"no vertebral body detected fully in view on the straightened image "
                               f"(the centre line covers {curve.length_mm:.0f} mm of the column)")
        line_lps = None
        if second_look:
            t = time.perf_counter()
            kps = [d.keypoints_rc for d in dets]
            lateral = body_lateral_offsets(volume, ref, kps)
            line_lps = refine_line(ref, kps, lateral)
            dets = [d if u is None else d.moved_laterally(ref, u) for d, u in zip(dets, lateral, strict=True)]
            timings["second_look"] = time.perf_counter() - t
        if line_lps is None:
            line_lps = ref.spline(np.arange(0.0, ref.length_mm + 1e-9, 1.0))
        stage, t = Stage.MORPHOMETRY, time.perf_counter()
        graded = grade_spine([d.level for d in dets], [d.keypoints_lps for d in dets], grading)
        timings["morphometry"] = time.perf_counter() - t
        stage, t = Stage.DENSITY, time.perf_counter()
        hus = [trabecular_hu(volume, d.keypoints_lps) for d in dets]
        l1, l1_level = study_l1([d.level for d in dets], hus)
        timings["density"] = time.perf_counter() - t
        verts = []
        for d, (h, g), hu in zip(dets, graded, hus, strict=True):
            verts.append(VertebraResult(
                level=d.level, level_confidence=round(d.level_confidence, 4), score=round(d.score, 4),
                center_lps=[round(float(x), 2) for x in d.center_lps],
                keypoints_lps=[[round(float(x), 2) for x in p] for p in d.keypoints_lps],
                ha_mm=round(h.ha_mm, 2), hm_mm=round(h.hm_mm, 2), hp_mm=round(h.hp_mm, 2),
                height_loss=round(g.height_loss, 4), grade=int(g.grade), type=g.type.value,
                trabecular_hu=None if not np.isfinite(hu) else round(float(hu), 1),
                wedge_ratio=round(g.wedge_ratio, 4), biconcave_ratio=round(g.biconcave_ratio, 4),
                crush_ratio=None if not np.isfinite(g.crush_ratio) else round(g.crush_ratio, 4)))
        images: dict[str, str] = {}
        if out_dir is not None:
            from vertfrac_core.render import render_png

            stage, t = Stage.RENDER, time.perf_counter()
            rows = [{**v.__dict__, "keypoints_rc": d.keypoints_rc} for v, d in zip(verts, dets, strict=True)]
            render_png(Path(out_dir) / "sagittal.png", volume, ref, image, rows,
                       title=f"vertfrac {models.version}")
            images["sagittal"] = "sagittal.png"
            timings["render"] = time.perf_counter() - t
        line = line_lps[::5]
        return ScanResult(
            source=source, status=ScanStatus.OK, model_version=models.version,
            spine_curve_lps=[[round(float(x), 2) for x in p] for p in line], vertebrae=verts,
            l1_hu=None if l1 is None else round(l1, 1), l1_hu_level=l1_level,
            density_flag=density_flag(l1), max_grade=max(v.grade for v in verts), images=images,
            timings_s={k: round(v, 4) for k, v in timings.items()},
            contrast=volume.meta.get("contrast") if isinstance(volume.meta.get("contrast"), str) else None,
        )
    except NoSpineError as err:
        return ScanResult.failure(source, models.version, stage, "no_spine", str(err), timings)
    except VertfracError as err:
        return ScanResult.failure(source, models.version, stage, type(err).__name__, str(err), timings)
    except Exception as err:  # noqa: BLE001 - one scan never stops a run; the reason is recorded
        log.exception("analysis of %s failed at %s", source, stage.value)
        return ScanResult.failure(source, models.version, stage, "internal_error",
                                  f"{type(err).__name__}: {err}", timings)


class SecondLookLocalizer:
    """Step 1 followed by the second look (step 2 on the first straightening, the line moved onto
    the bodies it found), as a localizer: what ``vertfrac evaluate localizer --second-look``
    scores. The line is the one :func:`analyze_volume` reports."""

    def __init__(self, models: Models) -> None:
        self.models = models

    def __call__(self, volume: Volume):
        from vertfrac_core.localize.model import SpineCurve

        res = analyze_volume(volume, source="evaluation", models=self.models, second_look=True)
        if res.status != ScanStatus.OK:
            raise NoSpineError(res.error or "analysis failed")
        return SpineCurve(points_lps=np.asarray(res.spine_curve_lps, dtype=float))


def analyze_path(path: str, out_dir: Path, models: Models | None = None) -> ScanResult:
    """Load ``path`` and analyse it; writes result.json (always) and the PNG into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    models = models or load_models()
    try:
        volume = load_any(path)
    except VertfracError as err:
        res = ScanResult.failure(path, models.version, Stage.LOAD, type(err).__name__, str(err))
    except Exception as err:  # noqa: BLE001
        res = ScanResult.failure(path, models.version, Stage.LOAD, "internal_error", f"{type(err).__name__}: {err}")
    else:
        load_s = time.perf_counter() - t
        res = analyze_volume(volume, source=path, models=models, out_dir=out_dir)
        res = ScanResult.from_dict({**res.to_dict(), "timings_s": {"load": round(load_s, 4), **res.timings_s}})
    (out_dir / "result.json").write_text(res.to_json())
    return res
