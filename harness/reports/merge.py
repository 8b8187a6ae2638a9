"""``harness report STUDY1 STUDY2 …``: one report over several studies.

Each study is given as for ``harness report`` (a study name -- its latest parent run -- or a
parent run id). Their trial runs are put in one per-run frame with a ``source`` column (the
study name, or ``name@<run id>`` when the same study appears twice); a variant name that two
studies both use becomes ``<source>/<variant>`` so their runs are not pooled. Then the
report is the single-study one over that frame: per dataset, every section compares the
variants of all the studies.

What may be merged: every study must share a dataset with at least one of the others (else
ConfigError, which names each study's datasets: its runs could be compared with nothing). Image metrics stay honest through
the report's provenance rule: runs whose extractor, reference data or sample counts differ
are shown per provenance group and never ranked together, and the report names the
differing tags. The merged report is written to a folder only, not attached to any study's
parent run (it belongs to none of them).
"""

from __future__ import annotations

import pandas as pd

from harness import names
from harness.errors import ConfigError
from harness.reports.load import load_runs, study_name
from harness.tracking import retry

#: the frame column naming the study a run came from
SOURCE = "source"


def merged_frame(client, parents: list[tuple[str, str]]) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """``(frame, [(source, parent run id)])`` for ``parents`` = ``[(experiment id, parent run
    id)]``; ConfigError when they share no dataset or one parent appears twice."""
    if len({p for _, p in parents}) != len(parents):
        raise ConfigError("the same study run is named twice; name each study once")
    frames, sources = [], []
    seen: dict[str, int] = {}
    for exp_id, parent_id in parents:
        name = study_name(client, exp_id, retry(client.get_run, parent_id))
        seen[name] = seen.get(name, 0) + 1
        frames.append((name, parent_id, load_runs(client, exp_id, parent_id)))
    for name, parent_id, df in frames:
        source = f"{name}@{parent_id[:8]}" if seen[name] > 1 else name
        df[SOURCE] = source
        sources.append((source, parent_id))
    _check_shared_datasets(frames, sources)
    merged = pd.concat([df for _, _, df in frames], ignore_index=True)
    owners = merged.groupby(names.TAG_VARIANT, dropna=True)[SOURCE].nunique()
    shared = set(owners[owners > 1].index)
    clash = merged[names.TAG_VARIANT].isin(shared)
    merged.loc[clash, names.TAG_VARIANT] = (merged.loc[clash, SOURCE] + "/"
                                           + merged.loc[clash, names.TAG_VARIANT])
    return merged, sources


def _check_shared_datasets(frames, sources) -> None:
    datasets = [set(df[names.TAG_DATASET].dropna()) if names.TAG_DATASET in df else set()
                for _, _, df in frames]
    alone = [i for i, ds in enumerate(datasets)
             if not ds & set().union(*(d for j, d in enumerate(datasets) if j != i))]
    if alone:
        listed = "; ".join(f"{src}: {', '.join(sorted(ds)) or 'no runs'}"
                           for (src, _), ds in zip(sources, datasets))
        lonely = ", ".join(sources[i][0] for i in alone)
        raise ConfigError(f"{lonely} shares no dataset with the other studies, so nothing in "
                          f"it can be compared ({listed}); merge studies that ran a dataset "
                          "in common")
