"""The per-study screening report: one page a clinician can verify, as HTML and as PDF.

What it shows comes from the tables of one study (its current ``scans`` row, its ``vertebrae``
rows, age and sex of its ``series_index`` row): the pseudonymous study key, the age band (never
the age), sex, the picture, the vertebra table, L1 attenuation with its flag, a plain-language
summary (:func:`summary_sentences`) and the model version. The picture is the pipeline's
``sagittal.png`` when the run stored one (``scans.image_path``, relative to the tables), else a
schematic drawn from the stored keypoints.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import pandas as pd

from reports import figures
from reports.html import render
from reports.load import Tables, read_image
from reports.population import generator_version
from reports.privacy import check_text
from reports.stats import SEX_LABELS
from vertfrac_core.anatomy import ALL_LEVELS
from vertfrac_core.detect.levels import level_label
from vertfrac_core.errors import InputError

GRADE_WORDS = {1: "Mild", 2: "Moderate", 3: "Severe"}
DENSITY_LABELS = {
    "likely_osteoporosis": "osteoporosis likely",
    "indeterminate": "indeterminate",
    "unlikely_osteoporosis": "osteoporosis unlikely",
    "unknown": "not measurable",
}
VERTEBRA_COLUMNS = ["level", "level_confidence", "ha_mm", "hm_mm", "hp_mm", "wedge_ratio", "biconcave_ratio", "crush_ratio",
                    "height_loss", "grade", "type", "trabecular_hu"]
DISCLAIMER = "This report supports, and does not replace, a radiologist's reading."


#: series coarser than this along the head-feet axis get a caution in the summary: on real
#: anatomy (VerSe 005 and TPTBox reconstructed again with thicker slices against their thin-slice
#: masks, ``vertfrac evaluate real``, session 12) all three heights stayed within 2 mm for 4 of 4
#: bodies as scanned and 3 of 4 at 2 mm slices, for none at 3 or 5 mm
THICK_SLICE_MM = 2.0


def thickness_sentence(slice_mm: float | None) -> str | None:
    """A caution for a series analysed on slices thicker than :data:`THICK_SLICE_MM` (None
    otherwise, and when the thickness is unknown)."""
    if slice_mm is None or pd.isna(slice_mm) or float(slice_mm) <= THICK_SLICE_MM:
        return None
    return (f"Analysed on {float(slice_mm):.1f} mm slices: vertebral heights, and the grades made from "
            "them, are less certain than on thin slices (on real anatomy at 3-5 mm slices, posterior "
            "heights read about 3-4 mm short); where a thin-slice reconstruction of this scan exists, "
            "check the findings on it.")


UNSURE_NOTE = ("Levels marked ? are uncertain: the two level models disagree on them, or the anatomy "
               "(air beside the body, body size) overruled both (typically a short field of view with no "
               "rib end, sacrum or neck to count from); count them on the images.")


def _shown(vertebrae: pd.DataFrame) -> list[str]:
    """Each row's level as the reports write it: with "?" when its confidence is below
    ``CONFIDENT_LEVEL`` (:func:`vertfrac_core.detect.levels.level_label`)."""
    return [level_label(r) for _, r in vertebrae.iterrows()]


def _table_records(vertebrae: pd.DataFrame) -> list[dict[str, Any]]:
    """The vertebra table's rows as the page and the PDF show them (levels via :func:`_shown`)."""
    return [{**v, "level": s} for v, s in zip(vertebrae.to_dict("records"), _shown(vertebrae), strict=True)]


def _join(levels: list[str]) -> str:
    return levels[0] if len(levels) == 1 else ", ".join(levels[:-1]) + " and " + levels[-1]


def _rank(level: str) -> int:
    return ALL_LEVELS.index(level) if level in ALL_LEVELS else 99


def fracture_sentences(vertebrae: pd.DataFrame) -> list[str]:
    """"Moderate wedge fracture of L1 (Genant grade 2)." per grade and type, most severe first;
    uncertain levels carry "?" and a closing sentence says what that means."""
    def by_rank(g: pd.DataFrame) -> list[str]:
        return [s for _, s in sorted(zip(map(_rank, g["level"]), _shown(g), strict=True))]

    frac = vertebrae[vertebrae["grade"].astype(int) >= 1]
    if frac.empty:
        levels = by_rank(vertebrae)
        span = f" ({levels[0]}–{levels[-1]} assessed)" if levels else ""
        out = [f"No vertebral compression fracture detected{span}."]
        return out + ([UNSURE_NOTE] if any(s.endswith("?") for s in levels) else [])
    out = []
    groups = frac.groupby([frac["grade"].astype(int), frac["type"]])
    for (grade, kind), g in sorted(groups, key=lambda kv: (-kv[0][0], min(map(_rank, kv[1]["level"])))):
        levels = by_rank(g)
        noun = "fracture" if len(levels) == 1 else "fractures"
        out.append(f"{GRADE_WORDS.get(grade, f'Grade {grade}')} {kind} {noun} of {_join(levels)} "
                   f"(Genant grade {grade}).")
    return out + ([UNSURE_NOTE] if any(s.endswith("?") for s in _shown(frac)) else [])


def density_sentence(l1_hu: float | None, level: str | None, flag: str | None,
                     contrast: str | None = None, level_confidence: float | None = None) -> str:
    """"L1 attenuation 92 HU: osteoporosis likely; consider DXA." and its variants; "L1?" with
    a warning when the body's level is uncertain."""
    if l1_hu is None or pd.isna(l1_hu):
        return "L1 attenuation could not be measured."
    name = level_label({"level": level or "L1", "level_confidence": level_confidence})
    where = name if level in (None, "L1") else f"{name} (L1 not measurable)"
    advice = {"likely_osteoporosis": "osteoporosis likely; consider DXA.",
              "indeterminate": "indeterminate for osteoporosis; consider DXA if other risk factors are present.",
              "unlikely_osteoporosis": "osteoporosis unlikely."}.get(flag or "", "not classified.")
    text = f"{where} attenuation {float(l1_hu):.0f} HU: {advice}"
    if name.endswith("?"):
        text += " The body measured may be another level (its level is uncertain)."
    if contrast:
        text += " Contrast-enhanced scan: attenuation reads higher than without contrast."
    return text


def summary_sentences(status: str, vertebrae: pd.DataFrame, l1_hu: float | None, l1_level: str | None,
                      flag: str | None, *, contrast: str | None = None, failed_stage: str | None = None,
                      error_code: str | None = None, slice_mm: float | None = None) -> list[str]:
    """The plain-language summary of one study's result."""
    if status == "failed":
        return [f"No result: automated screening failed at the {failed_stage or 'unknown'} step "
                f"({error_code or 'no reason recorded'}). The scan needs its usual reading."]
    if status != "ok":
        return [f"Not screened ({error_code or status}). The scan needs its usual reading."]
    conf = _confidence_of(vertebrae, l1_level)
    thick = thickness_sentence(slice_mm)
    return [*fracture_sentences(vertebrae), density_sentence(l1_hu, l1_level, flag, contrast, conf),
            *([thick] if thick else [])]


def _confidence_of(vertebrae: pd.DataFrame, level: str | None) -> float | None:
    """The level confidence of the study's body named ``level`` (None if unknown)."""
    if level is None or "level_confidence" not in vertebrae or not (vertebrae["level"] == level).any():
        return None
    return float(vertebrae.loc[vertebrae["level"] == level, "level_confidence"].iloc[0])


@dataclass(frozen=True)
class StudyReport:
    """Everything one study's report shows (no identifier beyond the keyed study hash)."""

    study_key: str
    age_band: str | None
    sex: str | None
    status: str
    model_version: str
    processed_on: str
    vertebrae: pd.DataFrame
    l1_hu: float | None
    hu_level: str | None  # as shown: with "?" when the body's level is uncertain
    density_flag: str
    contrast: str | None
    summary: list[str]
    picture_png: bytes | None
    picture_kind: str  # "sagittal" (the pipeline's picture), "schematic", or "none"

    @property
    def short_key(self) -> str:
        return self.study_key[:12]

    @property
    def sex_label(self) -> str:
        return {"F": "female", "M": "male"}.get(self.sex or "", "unknown")

    @property
    def density_label(self) -> str:
        return DENSITY_LABELS.get(self.density_flag, self.density_flag)

    @property
    def picture_caption(self) -> str:
        return {"sagittal": "Straightened sagittal image with the 6 keypoints, heights (ha/hm/hp mm) "
                            "and the Genant grade of each vertebra (colour), beside the mid-sagittal "
                            "view of the original volume.",
                "schematic": "Schematic from the measured keypoints (no stored image for this "
                             "study): bodies outlined and coloured by Genant grade."}.get(self.picture_kind, "")


def resolve_study(study_rows: pd.DataFrame, key: str) -> pd.Series:
    """The study row whose key is ``key`` or starts with it (at least 8 characters)."""
    key = key.strip().lower()
    if len(key) < 8:
        raise InputError(f"study key {key!r} is too short; give at least 8 characters of the key")
    hits = study_rows[study_rows["study_key"].str.startswith(key)]
    if hits.empty:
        raise InputError(f"no screened study has a key starting with {key!r}; list them in the "
                         "dashboard or with DuckDB (docs/dashboards.md)")
    if len(hits) > 1:
        raise InputError(f"{len(hits)} studies have keys starting with {key!r}; give more characters")
    return hits.iloc[0]


def study_report(tables: Tables, row: pd.Series, *, dest: str | None = None,
                 storage_options: dict[str, Any] | None = None) -> StudyReport:
    """The report of the study in ``row`` (a row of :func:`reports.stats.studies`)."""
    key = ["series_key", "content_hash", "model_version"]
    v = tables.vertebrae
    if not v.empty:
        mask = (v[key[0]] == row[key[0]]) & (v[key[1]] == row[key[1]]) & (v[key[2]] == row[key[2]])
        v = v[mask]
    v = v.sort_values("level", key=lambda s: s.map(_rank)).reset_index(drop=True)
    ok = row["status"] == "ok"
    picture, kind = None, "none"
    if ok and dest and isinstance(row.get("image_path"), str) and row["image_path"]:
        picture = read_image(dest, row["image_path"], storage_options)
        kind = "sagittal" if picture else kind
    if ok and picture is None:
        picture, kind = figures.spine_schematic_png(v), "schematic"
    l1 = None if pd.isna(row["l1_hu"]) else float(row["l1_hu"])
    contrast = row["contrast"] if isinstance(row.get("contrast"), str) and row["contrast"] else None
    processed = pd.Timestamp(row["processed_at"])
    return StudyReport(
        study_key=str(row["study_key"]), age_band=row["age_band"] if isinstance(row["age_band"], str) else None,
        sex=row["sex"] if isinstance(row["sex"], str) else None, status=str(row["status"]),
        model_version=str(row["model_version"]),
        processed_on=processed.strftime("%Y-%m-%d") if not pd.isna(processed) else "unknown",
        vertebrae=v[VERTEBRA_COLUMNS] if len(v) else pd.DataFrame(columns=VERTEBRA_COLUMNS),
        l1_hu=l1, hu_level=level_label({"level": row["l1_hu_level"],
                                        "level_confidence": _confidence_of(v, row["l1_hu_level"])})
        if isinstance(row["l1_hu_level"], str) else None,
        density_flag=str(row["density_flag"] or "unknown") if ok else "unknown", contrast=contrast,
        summary=summary_sentences(str(row["status"]), v, l1, row["l1_hu_level"], row["density_flag"],
                                  contrast=contrast, failed_stage=row["failed_stage"],
                                  error_code=row["error_code"], slice_mm=row.get("slice_mm")),
        picture_png=picture, picture_kind=kind)


def study_html(r: StudyReport, *, generated_at: dt.datetime | None = None) -> str:
    when = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    view = {**r.__dict__, "short_key": r.short_key, "sex_label": r.sex_label,
            "density_label": r.density_label, "picture_caption": r.picture_caption,
            "vertebrae": _table_records(r.vertebrae),
            "picture_uri": figures.data_uri(r.picture_png) if r.picture_png else ""}
    html = render("study.html.j2", r=view, generated_at=when, generator_version=generator_version(),
                  sex_labels=SEX_LABELS)
    return check_text(html, f"the report of study {r.short_key}")


def _fmt(x: Any, nd: int) -> str:
    return "–" if x is None or pd.isna(x) else f"{float(x):.{nd}f}"


def study_pdf(r: StudyReport) -> bytes:
    """The same report as a PDF (A4; page 1 text and table, page 2 the picture)."""
    import textwrap

    import matplotlib.image as mpimg
    from matplotlib.backends.backend_pdf import PdfPages

    plt = figures._plt()
    buf = io.BytesIO()
    meta = {"Title": f"vertfrac screening report {r.short_key}", "Creator": "vertfrac",
            "Producer": "vertfrac", "CreationDate": None}
    with PdfPages(buf, metadata=meta) as pdf:
        fig = plt.figure(figsize=(8.27, 11.69))
        y = 0.96

        def line(text: str, size: float = 9.5, weight: str = "normal", gap: float = 0.022,
                 colour: str = "#1d2733") -> None:
            nonlocal y
            for part in textwrap.wrap(text, 105) or [""]:
                fig.text(0.07, y, part, fontsize=size, weight=weight, color=colour, va="top")
                y -= gap

        line("Opportunistic CT screening: vertebral fractures and bone density", 13, "bold", 0.035)
        for label, value in (("study (pseudonymous key)", r.study_key), ("age band", r.age_band or "unknown"),
                             ("sex", r.sex_label), ("model version", r.model_version),
                             ("screened", r.processed_on)):
            line(f"{label}: {value}", 8.5, gap=0.018)
        y -= 0.01
        line("Summary", 11, "bold", 0.026)
        for s in r.summary:
            line(s, 10.5, gap=0.022, colour="#154360")
        if r.status == "ok":
            y -= 0.01
            line(f"{r.hu_level or 'L1'} trabecular attenuation {_fmt(r.l1_hu, 0)} HU: {r.density_label} "
                 "(<= 110 HU likely, 110-160 indeterminate, > 160 unlikely; Pickhardt 2013)", 9)
            rows = [[v["level"], _fmt(v["ha_mm"], 1), _fmt(v["hm_mm"], 1), _fmt(v["hp_mm"], 1),
                     _fmt(v["wedge_ratio"], 2), _fmt(v["biconcave_ratio"], 2), _fmt(v["crush_ratio"], 2),
                     f"{100 * float(v['height_loss']):.0f} %", str(int(v["grade"])), v["type"],
                     _fmt(v["trabecular_hu"], 0)] for v in _table_records(r.vertebrae)]
            height = min(y - 0.12, 0.021 * (len(rows) + 1))
            ax = fig.add_axes((0.07, y - 0.01 - height, 0.86, height))
            ax.axis("off")
            if rows:
                t = ax.table(cellText=rows, colLabels=["level", "ha mm", "hm mm", "hp mm", "ha/hp", "hm/hp",
                                                       "hp/ref", "loss", "grade", "type", "HU"],
                             loc="upper center", cellLoc="center")
                t.auto_set_font_size(False)
                t.set_fontsize(7.5)
                t.scale(1, 1.0)
                for i, v in enumerate(r.vertebrae.to_dict("records"), start=1):
                    g = int(v["grade"])
                    if g:
                        for j in range(11):
                            t[i, j].set_facecolor(figures.GRADE_COLOURS[g] + "55")
        fig.text(0.07, 0.05, DISCLAIMER + " Verify every grade on the picture (page 2) and the original images.",
                 fontsize=8.5, weight="bold", color="#7d6608", wrap=True)
        pdf.savefig(fig)
        plt.close(fig)
        if r.picture_png:
            fig = plt.figure(figsize=(8.27, 11.69))
            ax = fig.add_axes((0.04, 0.08, 0.92, 0.86))
            ax.imshow(mpimg.imread(io.BytesIO(r.picture_png), format="png"))
            ax.axis("off")
            fig.text(0.5, 0.97, f"Study {r.short_key}: {r.picture_caption}", ha="center", va="top",
                     fontsize=8, wrap=True)
            fig.text(0.07, 0.03, DISCLAIMER, fontsize=8.5, weight="bold", color="#7d6608")
            pdf.savefig(fig)
            plt.close(fig)
    return buf.getvalue()
