"""Finding a study in the tracking store: :func:`latest_study_run`."""

from __future__ import annotations

import re

from harness import names
from harness.errors import ConfigError
from harness.tracking import retry, search_all

_HEX_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _study_filter() -> str:
    return f"tags.`{names.TAG_KIND}` = 'study'"


def _active_experiments(client) -> list:
    out, token = [], None
    while True:
        page = retry(client.search_experiments, max_results=1000, page_token=token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def _study_names(client) -> list[str]:
    found = []
    for exp in _active_experiments(client):
        if search_all(client, [exp.experiment_id], _study_filter(), limit=1):
            found.append(exp.name)
    return sorted(found)


def _available(client) -> str:
    studies = _study_names(client)
    return ("available studies: " + ", ".join(studies)) if studies else \
        "this tracking store has no study runs yet (run `harness study` first)"


def latest_study_run(client, study: str | None) -> tuple[str, str]:
    """``(experiment_id, parent_run_id)`` of a study's parent run (tag ``kind=study``).

    ``study`` is a study (experiment) name -- its most recent parent run --, a 32-hex parent
    run id, or None for the most recent parent run in the whole store. ConfigError, listing
    the available study names, when nothing matches.
    """
    if study is None:
        ids = [e.experiment_id for e in _active_experiments(client)]
        runs = search_all(client, ids, _study_filter(), order_by=["attributes.start_time DESC"],
                           limit=1) if ids else []
        if not runs:
            raise ConfigError(f"no study found in the tracking store; {_available(client)}")
        return runs[0].info.experiment_id, runs[0].info.run_id

    if _HEX_RUN_ID.match(study):
        try:
            run = retry(client.get_run, study)
        except Exception:  # noqa: BLE001 -- not a run id: maybe a (strange) study name
            run = None
        if run is not None:
            if run.data.tags.get(names.TAG_KIND) == "study":
                return run.info.experiment_id, run.info.run_id
            parent = run.data.tags.get(names.TAG_PARENT)
            hint = f" (it is a trial run; its study's parent run is {parent})" if parent else ""
            raise ConfigError(f"run {study} is not a study's parent run{hint}; "
                              f"give a study name or a parent run id; {_available(client)}")

    exp = client.get_experiment_by_name(study)
    if exp is None or exp.lifecycle_stage != "active":
        raise ConfigError(f"no study named {study!r} in the tracking store; {_available(client)}")
    runs = search_all(client, [exp.experiment_id], _study_filter(),
                       order_by=["attributes.start_time DESC"], limit=1)
    if not runs:
        raise ConfigError(f"experiment {study!r} has no study parent run (tag "
                          f"{names.TAG_KIND}=study); {_available(client)}")
    return exp.experiment_id, runs[0].info.run_id
