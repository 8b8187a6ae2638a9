"""Provenance of image metrics: which runs may be ranked against each other.

FID, IS, KID, precision/recall, the classifier's mode counts and the cond/code accuracies
are only comparable between runs whose numbers were made the same way: the same feature
extractor (and weights), the same real reference images, the same sample counts, the same
classifier and the same dataset split. The metrics log that as tags on each trial run
(:meth:`harness.metrics.Metric.provenance`, the dataset's ``tags()``); this module groups runs
by them. Pure functions over the per-run frame of :func:`harness.reports.load.runs_frame`
(one column per provenance tag, None where a run has no such tag); nothing here reads MLflow.

* :func:`is_provenance_tag` -- whether a tag name is a provenance tag;
* :func:`provenance_columns` -- the provenance-tag columns of a frame;
* :func:`provenance_groups` -- the rows grouped by their provenance tag values;
* :func:`provenance_conflicts` -- the tags whose values differ, and which variants have which;
* :func:`warning`, :func:`group_heading` -- how the report says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import pandas as pd

from harness import names


def _prefix(tag: str) -> str:
    return tag.partition(".")[0] + "."


#: Every tag whose name starts with one of these is a provenance tag ("fidelity.",
#: "classifier.", "class_modes.", "translation_fid.").
PROVENANCE_PREFIXES = tuple(dict.fromkeys(_prefix(t) for t in (
    names.TAG_FIDELITY_EXTRACTOR, names.TAG_FIDELITY_EXTRACTOR_HASH,
    names.TAG_FIDELITY_REAL_HASH, names.TAG_FIDELITY_SAMPLES_EVAL,
    names.TAG_FIDELITY_SAMPLES_FINAL, names.TAG_CLASSIFIER_HASH, names.TAG_CLASSIFIER_ACCURACY,
    names.TAG_CLASS_MODES_SAMPLES_FINAL, names.TAG_CLASS_MODES_MIN_COUNT,
    names.TAG_CLASS_MODES_CONFIDENCE, names.TAG_TRANSLATION_FID_REAL,
    names.TAG_TRANSLATION_FID_SAMPLES)))
#: How an image dataset's split and stacks were made (``Dataset.tags()``).
#: (``dataset.data_dir`` is deliberately not provenance: the same files may live in
#: different folders on different machines.)
TAG_DATASET_SPLIT = names.TAG_DATASET_SPLIT
PROVENANCE_TAGS = (names.TAG_DATASET_SPLIT, names.TAG_DATASET_STACKS)

#: How a tag a run does not have is shown.
NOT_SET = "(not set)"


def is_provenance_tag(tag: Any) -> bool:
    """Whether ``tag`` names a provenance tag: ``fidelity.*``, ``classifier.*``,
    ``class_modes.*`` or ``dataset.split``."""
    tag = str(tag)
    return tag in PROVENANCE_TAGS or tag.startswith(PROVENANCE_PREFIXES)


def provenance_columns(df: pd.DataFrame) -> list[str]:
    """The provenance-tag columns of ``df``, sorted."""
    return sorted(str(c) for c in df.columns if is_provenance_tag(c))


def _value(v: Any) -> str | None:
    if v is None or v is pd.NA:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v)


class ProvenanceGroup(NamedTuple):
    """Runs that share every provenance tag value."""

    #: tag -> value (None where these runs do not have the tag), every provenance column
    tags: dict[str, str | None]
    #: the runs, in the input order
    rows: pd.DataFrame

    @property
    def variants(self) -> list[str]:
        return sorted({str(v) for v in self.rows[names.TAG_VARIANT].fillna("?")})


def provenance_groups(df: pd.DataFrame, tags: Iterable[str] | None = None
                      ) -> list[ProvenanceGroup]:
    """``df``'s rows grouped by the values of their provenance tags.

    ``tags`` are the tag columns that count (default: every provenance column of ``df``,
    :func:`provenance_columns`); a tag a run does not have (NaN/None) is a value of its own,
    so a run without a tag is not comparable with one that has it. Groups come in the order
    of their first row in ``df``; one group for a non-empty frame without provenance columns,
    none for an empty one.
    """
    cols = provenance_columns(df) if tags is None else [t for t in tags if t in df.columns]
    if df.empty:
        return []
    keys = [tuple(_value(row[c]) for c in cols) for _, row in df.iterrows()]
    order: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        order.setdefault(key, []).append(i)
    return [ProvenanceGroup(dict(zip(cols, key)), df.iloc[idx])
            for key, idx in order.items()]


def provenance_conflicts(df: pd.DataFrame, tags: Iterable[str] | None = None
                         ) -> dict[str, dict[str, list[str]]]:
    """The provenance tags whose values differ among ``df``'s rows.

    ``{tag: {value: [variants whose runs have that value]}}`` for every tag (among ``tags``,
    default every provenance column) with more than one distinct value; a run without the
    tag has the value :data:`NOT_SET`. Values and variants are sorted. Empty when the runs
    may be ranked against each other.
    """
    cols = provenance_columns(df) if tags is None else [t for t in tags if t in df.columns]
    out: dict[str, dict[str, list[str]]] = {}
    if df.empty:
        return out
    variants = df[names.TAG_VARIANT].fillna("?").astype(str) if names.TAG_VARIANT in df \
        else pd.Series("?", index=df.index)
    for col in cols:
        values = df[col].map(lambda v: NOT_SET if _value(v) is None else _value(v))
        if values.nunique() < 2:
            continue
        out[col] = {value: sorted(set(variants[values == value]))
                    for value in sorted(values.unique())}
    return out


def describe_conflicts(conflicts: dict[str, dict[str, list[str]]]) -> str:
    """One sentence per differing tag: ``tag`: `value` (variants); `value` (variants).``"""
    parts = []
    for tag, values in conflicts.items():
        parts.append(f"`{tag}`: " + "; ".join(
            f"`{value}` ({', '.join(variants)})" for value, variants in values.items()))
    return ". ".join(parts) + ("." if parts else "")


# --- what the report says about it -----------------------------------------------------------


def patterns() -> str:
    """The provenance tags as the report names them: `fidelity.*`, ..., `dataset.split`."""
    return ", ".join([*(f"`{p}*`" for p in PROVENANCE_PREFIXES),
                      *(f"`{t}`" for t in PROVENANCE_TAGS)])


def warning(doc, dataset: str, conflicts: dict, consequence: str) -> None:
    """A warning paragraph in ``doc``: the runs of ``dataset`` differ in provenance (the
    tags, their values and which variants have which), and what the report does about it."""
    doc.p(f"**Warning -- provenance differs, not ranked.** The runs of `{dataset}` compared "
          "here were not measured the same way (extractor, reference images, sample counts, "
          "classifier or data split), so their numbers are not comparable across groups. "
          f"{consequence} Differing tags: {describe_conflicts(conflicts)}")


def group_heading(k: int, group: ProvenanceGroup, tags: Iterable[str]) -> str:
    """The line that opens provenance group ``k``'s table: its variants, runs and values."""
    values = ", ".join(f"`{t}` = `{group.tags.get(t) or NOT_SET}`" for t in tags)
    return (f"**Provenance group {k}** ({', '.join(group.variants)}; {len(group.rows)} runs): "
            + (values or "no provenance tags") + ".")
