"""What a run has to do: studies to screen, minus what is already done.

* :func:`work_items` turns the index into one :class:`WorkItem` per study with a selected
  series, its acceptable series ranked best first (the no-spine fallback candidates).
* :func:`pending` drops the studies whose ``(series_key, content_hash, model_version)`` is
  already published, so a rerun processes only new or changed series and a new model version
  reprocesses everything.

Which headers a run reads at all is decided earlier, by the object manifest
(``vertfrac_core.manifest``).
"""

from __future__ import annotations

from collections import Counter

from vertfrac_core.dicom.index import IndexResult
from vertfrac_core.screening import WorkItem


def work_items(index: IndexResult) -> list[WorkItem]:
    """One item per study with a selected series; candidates are the selection's ranked list
    (``IndexResult.candidates``: the chosen series, then the fallbacks)."""
    items = []
    for study_key, study in sorted(index.studies.items()):
        if study.chosen is None:
            continue
        candidates = index.candidates(study_key)
        if candidates:
            items.append(WorkItem(study_key, tuple(candidates)))
    return items


def pending(items: list[WorkItem], done: set[tuple[str, str, str]], model_version: str) -> list[WorkItem]:
    """Items whose result for ``model_version`` is not published yet."""
    return [it for it in items
            if (it.selected.series_key, it.selected.content_hash, model_version) not in done]


def likely_version(done: set[tuple[str, str, str]]) -> str | None:
    """The model version most published results carry (ties: the greatest string), None when
    nothing is published: a guess of this run's version before the models have loaded."""
    counts = Counter(k[2] for k in done)
    return max(counts, key=lambda v: (counts[v], v)) if counts else None
