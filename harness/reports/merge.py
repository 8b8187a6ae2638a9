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

``--pool`` (``pool=True``) instead pools a variant's runs across the studies: one group per
variant name, as if one study had run all their seeds -- a reproduction split over machines
or sessions, each running the same preset with its own ``seed:``. It is refused (ConfigError,
naming the variant, the studies and what differs) unless, per variant and dataset, every
study's non-search runs trained the same settings (every param but ``seed``, ``device`` and
file locations, and the model, loss and tricks) and no seed ran in two studies (it would
count twice).
"""

from __future__ import annotations

import pandas as pd

from harness import names
from harness.errors import ConfigError
from harness.reports.load import runs_frame, study_name
from harness.resolve import path_param_keys
from harness.tracking import child_runs, retry

#: the frame column naming the study a run came from
SOURCE = "source"


#: params pooled runs of one recipe may differ in: the seed is what pooling adds, the
#: device is where a run trained, not what it trained
POOL_FREE_PARAMS = ("seed", "device")


def merged_frame(client, parents: list[tuple[str, str]], *,
                 pool: bool = False) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """``(frame, [(source, parent run id)])`` for ``parents`` = ``[(experiment id, parent run
    id)]``; ConfigError when they share no dataset or one parent appears twice, and with
    ``pool`` when a variant's runs cannot be pooled (see the module docstring)."""
    if len({p for _, p in parents}) != len(parents):
        raise ConfigError("the same study run is named twice; name each study once (a study "
                          "name means its latest run: name runs of one study by their parent "
                          "run ids)")
    frames, sources, fetched = [], [], []
    seen: dict[str, int] = {}
    for exp_id, parent_id in parents:
        name = study_name(client, exp_id, retry(client.get_run, parent_id))
        seen[name] = seen.get(name, 0) + 1
        runs = child_runs(client, exp_id, parent_id)
        fetched.append(runs)
        frames.append((name, parent_id, runs_frame(runs)))
    for name, parent_id, df in frames:
        source = f"{name}@{parent_id[:8]}" if seen[name] > 1 else name
        df[SOURCE] = source
        sources.append((source, parent_id))
    _check_shared_datasets(frames, sources)
    merged = pd.concat([df for _, _, df in frames], ignore_index=True)
    if pool:
        _check_poolable([(src, runs) for (src, _), runs in zip(sources, fetched)])
        return merged, sources
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


def _recipe(run, where: set[str]) -> dict[str, str]:
    """What a run trained, less what pooled runs may differ in: :data:`POOL_FREE_PARAMS`
    and ``where``, its file locations (``Path`` parameters, e.g. a dataset's ``root``: the
    same files sit in other folders on other machines; what the files are is the
    provenance tags' to tell, and the report never ranks runs whose provenance differs)."""
    tags, params = run.data.tags, run.data.params
    return {**{k: v for k, v in params.items() if k not in POOL_FREE_PARAMS and k not in where},
            **{f"tag {t}": tags.get(t, "") for t in (names.TAG_MODEL, names.TAG_LOSS,
                                                     names.TAG_TRICKS)}}


def _check_poolable(sources: list[tuple[str, list]]) -> None:
    """ConfigError unless each variant x dataset trained one recipe in every study and no
    seed twice. Search-phase runs (each its own suggestion) and runs that recorded no params
    (killed before they started) are not compared; a run without a seed is refused."""
    first: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
    seeds: dict[tuple[str, str, str], tuple[str, str]] = {}
    locations: dict[tuple, set[str]] = {}  # runs of one variant share their param keys

    def order(run):  # the first clash named is the same on every call
        tags = run.data.tags
        seed = tags.get(names.TAG_SEED, "")
        return (tags.get(names.TAG_VARIANT, ""), tags.get(names.TAG_DATASET, ""),
                int(seed) if seed.isdigit() else -1, seed)

    for source, runs in sources:
        for run in sorted(runs, key=order):
            tags = run.data.tags
            if tags.get(names.TAG_PHASE) == names.PHASE_SEARCH:
                continue
            key = (tags.get(names.TAG_VARIANT, "?"), tags.get(names.TAG_DATASET, "?"))
            label = "/".join(key)
            seed = tags.get(names.TAG_SEED, run.data.params.get("seed"))
            if seed is None:
                raise ConfigError(f"--pool: run {run.info.run_id} of {label} in {source} "
                                  "records no seed, so its seed cannot be told apart")
            status = tags.get(names.TAG_STATUS) or run.info.status
            before, their_status = seeds.setdefault((*key, seed), (source, status))
            if before != source:
                raise ConfigError(
                    f"--pool: {label} ran seed {seed} in both {before} ({their_status}) and "
                    f"{source} ({status}), so the pooled runs would count it twice; give each "
                    "study its own `seed:` (seeds-phase seeds are seed + 10000 + j), or "
                    "delete the run not to count")
            if not run.data.params:
                continue
            plugins = (tags.get(names.TAG_MODEL), tags.get(names.TAG_LOSS))
            keys = (*plugins, frozenset(run.data.params))
            if keys not in locations:
                locations[keys] = path_param_keys(run.data.params, *plugins)
            recipe = _recipe(run, locations[keys])
            other, theirs = first.setdefault(key, (source, recipe))
            if other != source and theirs != recipe:
                differ = [k for k in sorted(set(theirs) | set(recipe))
                          if theirs.get(k) != recipe.get(k)]
                diff = "; ".join(f"{k}: {theirs.get(k, '(none)')} vs {recipe.get(k, '(none)')}"
                                 for k in differ[:5])
                more = f"; and {len(differ) - 5} more" if len(differ) > 5 else ""
                raise ConfigError(
                    f"--pool: {label} trained different settings in {other} and {source} "
                    f"({diff}{more}); pool only studies that ran the same settings with other "
                    "seeds, or leave out --pool to report each study's variant apart")
