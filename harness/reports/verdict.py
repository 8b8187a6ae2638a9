"""The verdict: what a study found, in computed sentences, per dataset.

The report opens with it (``## Verdict``: :mod:`harness.reports.sections.verdict`) and the
terminal summary of ``harness study`` ends with it (:func:`terminal_text`). :func:`verdict` is
pure -- a per-run DataFrame (:func:`harness.reports.load.runs_frame`) and the study's metric
in, one :class:`DatasetVerdict` per dataset out -- so a test can feed a constructed study and
check the exact sentences. Per dataset it says:

* **which variant(s) are best** on the study's metric (``search.metric``: the parent run's
  ``metric`` param, in the direction of its ``mode`` param) by the mean over the compared
  runs (the seeds phase, as :func:`harness.reports.summary.summarize`; failed runs and runs
  still RUNNING left out), and
  **by how much**: the best's lead over the runner-up with its percentile bootstrap 95%
  interval (:func:`harness.reports.stats.pairwise`). Where the dataset's runs do not report the
  study's metric it ranks on the first of modes covered, translation accuracy, FID and the xy
  game's final distance that they report, and says so. Runs whose provenance differs are
  not ranked (:mod:`harness.reports.provenance`).
* **which differences are distinguishable**: every pair of variants, two-sided Mann–Whitney
  U, Holm-adjusted over the dataset's pairs, adjusted p < ``alpha`` (0.05).
* **which results are at chance** (:func:`harness.reports.headline.chance_state`): the mean deciding
  value does not beat the bound a data-ignoring generator reaches; unknown where no chance
  level was logged. When the best is at chance, the best above chance is named too.
* **which runs failed** (status failed/stopped, or MLflow FAILED/KILLED) **or diverged**,
  among the compared runs, and how many in the search phase; and which compared runs are
  **still RUNNING** (left out like failed ones: a report made while a study runs ranks only
  the runs that ended).
* **what more seeds would buy**: with groups of n_a and n_b runs the smallest two-sided
  Mann–Whitney p is 2/C(n_a + n_b, n_a) (:func:`harness.reports.stats.min_mann_whitney_p`); Holm
  multiplies the smallest p of m pairs by m. When m × that floor is not below alpha no pair
  can be distinguishable, whatever the data; the verdict then says how many seeds per
  variant would allow it (:func:`seeds_for_any_pair`). For the top pair (best vs runner-up)
  not yet distinguishable it says about how many seeds per variant would make its observed
  effect distinguishable (:func:`seeds_for_effect`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as _st

from harness import names
from harness.reports import display, headline, provenance, stats
from harness.reports.runs import comparison_rows, failed_mask, measured_mask, unended_mask
from harness.reports.summary import summarize

ALPHA = 0.05
#: the most seeds per variant :func:`seeds_for_effect` and :func:`seeds_for_any_pair` try
MAX_SEEDS = 200
#: what the verdict ranks on where a dataset's runs do not report the study's metric
FALLBACK = (names.MODES_COVERED, names.TRANSLATION_ACCURACY, names.FID, names.XY_FINAL_DISTANCE)


@dataclass
class DatasetVerdict:
    """The verdict on one dataset: the facts, and the sentences that state them."""

    dataset: str
    metric: str | None  # what it ranks on (None: nothing to rank)
    higher_is_better: bool = True
    best: list[str] = field(default_factory=list)
    means: dict[str, float] = field(default_factory=dict)  # variant -> mean of ``metric``
    runner_up: str | None = None
    #: the best's lead over the runner-up, in the metric's better direction (> 0: ahead),
    #: with its bootstrap 95% interval
    lead: tuple[float, float, float] | None = None
    distinguishable: list[tuple[str, str]] = field(default_factory=list)  # (better, worse)
    not_distinguishable: list[tuple[str, str]] = field(default_factory=list)
    at_chance: list[str] = field(default_factory=list)
    above_chance: list[str] = field(default_factory=list)
    chance_unknown: list[str] = field(default_factory=list)
    failed: dict[str, tuple[int, int]] = field(default_factory=dict)  # variant -> (k, n)
    diverged: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: variant -> (k, n): runs MLflow still counts as RUNNING, left out as the failed ones
    unended: dict[str, tuple[int, int]] = field(default_factory=dict)
    search_failed: int = 0
    search_diverged: int = 0
    seeds: tuple[int, int] | None = None  # smallest and largest group of ranked runs
    pairs: int = 0
    #: whether any pair can reach Holm-adjusted p < alpha with these group sizes
    any_possible: bool | None = None
    seeds_for_any: int | None = None
    #: the share of (best, runner-up) run pairs where the best's run is better (ties half)
    effect: float | None = None
    seeds_for_top: int | None = None
    ranked: bool = False
    unranked: str = "no run reported a metric to rank on"  # why, where not ranked
    #: the study's metric where the verdict ranks on another (the dataset's runs lack it)
    instead_of: str | None = None
    sentences: list[str] = field(default_factory=list)
    short: list[str] = field(default_factory=list)


# --- seeds arithmetic ------------------------------------------------------------------------


def seeds_for_any_pair(pairs: int, alpha: float = ALPHA) -> int | None:
    """The fewest seeds per variant with which one of ``pairs`` pairs can be distinguishable:
    the smallest n with ``pairs × 2/C(2n, n) < alpha``; None past :data:`MAX_SEEDS`."""
    for n in range(1, MAX_SEEDS + 1):
        if max(1, pairs) * stats.min_mann_whitney_p(n, n) < alpha:
            return n
    return None


def projected_p(effect: float, n: int) -> float:
    """The two-sided Mann–Whitney p that ``n`` runs against ``n`` give when a fraction
    ``effect`` of their run pairs favour one side (ties half): exact for a complete
    separation (2/C(2n, n)), else the normal approximation of U (no ties), never below that
    floor."""
    floor = stats.min_mann_whitney_p(n, n)
    strength = abs(effect - 0.5)
    if strength >= 0.5 - 1e-12:
        return floor
    z = strength * n * math.sqrt(12.0 / (2 * n + 1))
    return max(floor, float(min(1.0, 2.0 * _st.norm.sf(z))))


def seeds_for_effect(effect: float, pairs: int, alpha: float = ALPHA) -> int | None:
    """About how many seeds per variant make a pair with observed ``effect`` distinguishable
    among ``pairs`` pairs: the smallest n with ``pairs × projected_p(effect, n) < alpha``
    (Holm never adjusts a p by more than the number of pairs). None when the effect is nil
    or more than :data:`MAX_SEEDS` would be needed."""
    if abs(effect - 0.5) < 1e-12:
        return None
    for n in range(2, MAX_SEEDS + 1):
        if max(1, pairs) * projected_p(effect, n) < alpha:
            return n
    return None


def superiority(a: np.ndarray, b: np.ndarray, higher_is_better: bool = True) -> float:
    """The fraction of pairs (x from ``a``, y from ``b``) where x is better than y, ties
    counted half: the common-language effect size, U / (n_a n_b)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        return math.nan
    diff = a[:, None] - b[None, :]
    if not higher_is_better:
        diff = -diff
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


# --- formatting ------------------------------------------------------------------------------


def _num(value: float, metric: str, places: int | None = None) -> str:
    text = f"{value:.{display.decimals(metric) if places is None else places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def _lead_places(metric: str, lead: float) -> int:
    """The metric's decimals, or more where the lead would show fewer than two significant
    digits (a lead of 0.0061 in hq_fraction reads 0.0061, not 0.01 with a CI "0.00 to 0.01")."""
    places = display.decimals(metric)
    if np.isfinite(lead) and lead != 0:
        places = max(places, min(6, 1 - math.floor(math.log10(abs(lead)))))
    return places


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _names(variants: list[str], bold: bool = True) -> str:
    marked = [f"**{v}**" if bold else v for v in variants]
    if len(marked) <= 2:
        return " and ".join(marked)
    return ", ".join(marked[:-1]) + " and " + marked[-1]


def _seeds_text(sizes: tuple[int, int]) -> str:
    lo, hi = sizes
    return f"{lo} seeds per variant" if lo == hi else f"{lo}–{hi} seeds per variant"


# --- the verdict -----------------------------------------------------------------------------


def _ranked_metric(done: pd.DataFrame, metric: str | None) -> tuple[str | None, str | None]:
    """``(metric to rank on, a sentence on why it is not the study's)``."""
    def reported(m: str) -> bool:
        return m in done and bool(np.isfinite(pd.to_numeric(done[m], errors="coerce")).any())

    if metric is not None and reported(metric):
        return metric, None
    fallback = next((m for m in FALLBACK if reported(m)), None)
    if fallback is None:
        return None, None
    if metric is None:
        return fallback, ("The study's metric is not recorded on its parent run; ranked on "
                          f"`{fallback}`.")
    return fallback, (f"No finished run reported the study's metric `{metric}` here; ranked "
                      f"on `{fallback}`.")


def _counts(rows: pd.DataFrame, mask: pd.Series) -> dict[str, tuple[int, int]]:
    out = {}
    for variant, vrows in rows.groupby(rows[names.TAG_VARIANT].fillna("?"), sort=True):
        k = int(mask.loc[vrows.index].sum())
        if k:
            out[str(variant)] = (k, len(vrows))
    return out


def verdict(df: pd.DataFrame, metric: str | None = None, mode: str | None = None, *,
            alpha: float = ALPHA, n_resamples: int = 2000, seed: int = 0,
            summary: pd.DataFrame | None = None) -> list[DatasetVerdict]:
    """One :class:`DatasetVerdict` per dataset of ``df`` (a per-run frame), in dataset order.

    ``metric``/``mode``: the study's ``search.metric`` and its direction (None: the metric's
    own, :func:`harness.reports.display.direction`). ``summary``:
    :func:`harness.reports.summary.summarize` of ``df`` when the caller has it (its chance
    column is read)."""
    if df is None or df.empty:
        return []
    if summary is None:
        summary = summarize(df, n_resamples=n_resamples, seed=seed, metric=metric, mode=mode)
    pairs = comparison_rows(df)
    datasets = sorted({d for _, d in pairs})
    out = []
    for dataset in datasets:
        rows = pd.concat([r for (_, d), (_, r) in sorted(pairs.items()) if d == dataset])
        ds_summary = summary[summary[names.TAG_DATASET] == dataset] if len(summary) else summary
        search = df[(df[names.TAG_DATASET].fillna("?") == dataset)
                    & (df[names.TAG_PHASE] == names.PHASE_SEARCH)]
        out.append(_dataset_verdict(dataset, rows, search, ds_summary, metric, mode, alpha,
                                    n_resamples, seed))
    return out


def _dataset_verdict(dataset, rows, search, summary, metric, mode, alpha, n_resamples,
                     seed) -> DatasetVerdict:
    failed = failed_mask(rows)
    done = rows[measured_mask(rows)]
    ranked, note = _ranked_metric(done, metric)
    v = DatasetVerdict(dataset=dataset, metric=ranked,
                       instead_of=metric if ranked is not None and ranked != metric else None)
    if note:
        v.sentences.append(note)
    if ranked is not None:
        v.higher_is_better = display.higher_is_better(ranked, mode if ranked == metric else None)
        _rank(v, done, alpha, n_resamples, seed)
    _chance(v, summary)
    v.failed = _counts(rows, failed)
    v.unended = _counts(rows, unended_mask(rows))
    diverged = (rows[names.TAG_STATUS] == names.STATUS_DIVERGED) & ~failed
    v.diverged = _counts(rows, diverged)
    v.search_failed = int(failed_mask(search).sum()) if len(search) else 0
    v.search_diverged = (int(((search[names.TAG_STATUS] == names.STATUS_DIVERGED)
                              & ~failed_mask(search)).sum()) if len(search) else 0)
    _failure_sentence(v)
    if v.ranked and len(v.means) >= 2:
        _seeds_sentence(v, alpha)
    _short(v)
    return v


def _rank(v: DatasetVerdict, done: pd.DataFrame, alpha, n_resamples, seed) -> None:
    m = v.metric
    values = pd.to_numeric(done[m], errors="coerce")
    scored = done[np.isfinite(values)]
    direction = "higher" if v.higher_is_better else "lower"
    conflicts = provenance.provenance_conflicts(scored)
    if conflicts:
        v.sentences.append(
            f"Not ranked: the runs differ in provenance ({', '.join(f'`{t}`' for t in conflicts)}), "
            f"so their `{m}` values were not measured the same way (see the per-group tables).")
        v.unranked = "provenance differs"
        return
    groups = {str(g): pd.to_numeric(r[m], errors="coerce").to_numpy(dtype=float)
              for g, r in scored.groupby(scored[names.TAG_VARIANT].fillna("?"), sort=True)}
    v.means = {g: float(x.mean()) for g, x in groups.items()}
    if not groups:
        v.sentences.append(f"No finished run reported `{m}`: nothing to rank.")
        v.unranked = "no finished run"
        return
    v.ranked = True
    pick = max if v.higher_is_better else min
    best_val = pick(v.means.values())
    v.best = sorted(g for g, x in v.means.items() if math.isclose(x, best_val, abs_tol=1e-12))
    a = v.best[0]
    if len(groups) == 1:
        v.sentences.append(f"Only **{a}** reported `{m}` ({_num(best_val, m)}, "
                           f"{len(groups[a])} runs): nothing to compare it with.")
        return
    others = {g: x for g, x in v.means.items() if g not in v.best}
    b = pick(others, key=others.get) if others else v.best[1]
    v.runner_up = b
    pw = stats.pairwise(scored.assign(**{names.TAG_VARIANT: scored[names.TAG_VARIANT]
                                         .fillna("?").astype(str)}),
                        m, group_col=names.TAG_VARIANT, n_resamples=n_resamples, seed=seed,
                        alpha=alpha)
    top = pw[((pw["a"] == a) & (pw["b"] == b)) | ((pw["a"] == b) & (pw["b"] == a))].iloc[0]
    sign = 1.0 if top["a"] == a else -1.0  # diff is a - b of the row's own order
    if not v.higher_is_better:
        sign = -sign
    lo, hi = sorted((sign * top["diff_low"], sign * top["diff_high"]))
    v.lead = (sign * top["diff"], lo, hi)
    places = _lead_places(m, v.lead[0])
    ci = (f" (95% CI {_num(lo, m, places)} to {_num(hi, m, places)})" if np.isfinite(lo) else
          " (no interval: a group has one run)")
    if len(v.best) > 1:
        head = (f"Best on `{m}` ({direction} is better): {_names(v.best)} tie at "
                f"{_num(best_val, m, places)}")
        head += (f", ahead of **{b}** ({_num(v.means[b], m, places)}) by "
                 f"{_num(v.lead[0], m, places)}{ci}." if b not in v.best else ".")
    else:
        head = (f"Best on `{m}` ({direction} is better): **{a}** with "
                f"{_num(best_val, m, places)} ({len(groups[a])} runs), ahead of **{b}** "
                f"({_num(v.means[b], m, places)}) by {_num(v.lead[0], m, places)}{ci}.")
    v.sentences.append(head)

    hits, misses = [], []
    for _, r in pw.iterrows():
        if not np.isfinite(r["p"]):
            continue
        if r["distinguishable"]:
            better_a = (r["diff"] > 0) == v.higher_is_better
            pair = (r["a"], r["b"]) if better_a else (r["b"], r["a"])
            v.distinguishable.append(pair)
            hits.append(f"**{pair[0]}** beats **{pair[1]}** (p {_p(r['p_holm'])})")
        else:
            v.not_distinguishable.append((r["a"], r["b"]))
            misses.append(f"{r['a']} vs {r['b']} (p {_p(r['p_holm'])})")
    v.pairs = int(np.isfinite(pw["p"].to_numpy(dtype=float)).sum())
    rule = f"two-sided Mann–Whitney, Holm-adjusted over {v.pairs} pair" + \
        ("s" if v.pairs != 1 else "") + f", p < {alpha:g}"
    if hits:
        text = f"Distinguishable ({rule}): " + ", ".join(hits)
        if misses:
            shown = misses if len(misses) <= 6 else misses[:5]
            text += "; not distinguishable: " + ", ".join(shown)
            if len(misses) > len(shown):
                text += f" and {len(misses) - len(shown)} more pairs"
        v.sentences.append(text + ".")
    else:
        v.sentences.append(f"No pair is distinguishable ({rule}).")
    sizes = [(int(r["n_a"]), int(r["n_b"])) for _, r in pw.iterrows() if np.isfinite(r["p"])]
    if sizes:
        v.seeds = (min(min(s) for s in sizes), max(max(s) for s in sizes))
        floor = min(stats.min_mann_whitney_p(*s) for s in sizes)
        v.any_possible = v.pairs * floor < alpha
        v.seeds_for_any = seeds_for_any_pair(v.pairs, alpha)
    v.effect = superiority(groups[a], groups[b], v.higher_is_better)
    if not any({a, b} == set(p) for p in v.distinguishable):
        v.seeds_for_top = seeds_for_effect(v.effect, v.pairs, alpha)


def _chance(v: DatasetVerdict, summary: pd.DataFrame) -> None:
    if summary is None or summary.empty or headline.CHANCE not in summary:
        return
    for _, row in summary.sort_values(names.TAG_VARIANT).iterrows():
        state = row[headline.CHANCE]
        target = {headline.AT: v.at_chance, headline.ABOVE: v.above_chance,
                  headline.UNKNOWN: v.chance_unknown}.get(state)
        if target is not None:
            target.append(str(row[names.TAG_VARIANT]))
    if v.at_chance:
        everyone = not v.above_chance and not v.chance_unknown
        if everyone:
            text = ("Every variant is at chance: none is clearly above a generator that "
                    "ignores the data, so the ranking says nothing about learning it")
        else:
            text = (f"At chance (not clearly above a generator that ignores the data): "
                    f"{_names(v.at_chance)}")
        if v.best and set(v.best) <= set(v.at_chance) and not everyone and v.metric:
            above = {g: x for g, x in v.means.items() if g in v.above_chance}
            if above:
                pick = max if v.higher_is_better else min
                g = pick(above, key=above.get)
                text += (f"; the best on `{v.metric}` is among them -- best above chance: "
                         f"**{g}** ({_num(above[g], v.metric)})")
            else:
                text += f"; the best on `{v.metric}` is among them"
        v.sentences.append(text + ".")
    elif v.above_chance and not v.chance_unknown:
        v.sentences.append("Every variant is clearly above chance.")
    if v.chance_unknown:
        v.sentences.append(f"Chance level unknown for {_names(v.chance_unknown)} (not logged).")


def _failure_sentence(v: DatasetVerdict) -> None:
    parts = []
    if v.failed:
        parts.append("Failed or stopped: " + ", ".join(
            f"**{g}** ({k} of {n} runs)" for g, (k, n) in v.failed.items())
            + " -- left out of the means")
    if v.unended:
        v.sentences.append("Still RUNNING, not measured: " + ", ".join(
            f"**{g}** ({k} of {n} runs)" for g, (k, n) in v.unended.items())
            + " -- their latest values are not their results, so they are left out of "
            "every mean and test (the study is in flight, or a process died without ending "
            "them: see Failures).")
    if v.diverged:
        parts.append("diverged: " + ", ".join(
            f"**{g}** ({k} of {n} runs)" for g, (k, n) in v.diverged.items())
            + " -- counted with their last values")
    search = []
    if v.search_failed:
        search.append(f"{v.search_failed} failed")
    if v.search_diverged:
        search.append(f"{v.search_diverged} diverged")
    if parts:
        text = "; ".join(parts)
        text = text[0].upper() + text[1:]
        if search:
            text += f"; in the search phase {' and '.join(search)}"
        v.sentences.append(text + ".")
    elif search:
        v.sentences.append(f"No compared run failed or diverged; in the search phase "
                           f"{' and '.join(search)}.")
    else:
        v.sentences.append("No run failed or diverged.")


def _seeds_sentence(v: DatasetVerdict, alpha: float) -> None:
    if v.seeds is None:
        return
    a, b = v.best[0], v.runner_up
    seeds = _seeds_text(v.seeds)
    effect = ""
    if v.effect is not None and np.isfinite(v.effect):
        # the side the runs' ranks favour, which need not be the one with the better mean
        winner, share = (a, v.effect) if v.effect >= 0.5 else (b, 1.0 - v.effect)
        though = f", though {a} has the better mean" if winner != a else ""
        effect = (f"if its observed effect held ({winner} better in {share:.0%} of run "
                  f"pairs{though}), ")
    if v.seeds_for_top is not None:
        top = f"about {v.seeds_for_top} seeds per variant would make {a} vs {b} distinguishable"
    elif v.effect is not None and abs(v.effect - 0.5) < 1e-12:
        top = f"{a} vs {b} show no effect to separate, so more seeds are not expected to"
        effect = ""
    else:
        top = f"{a} vs {b} would need more than {MAX_SEEDS} seeds per variant"
    if not v.any_possible:
        lo, hi = v.seeds
        floor = stats.min_mann_whitney_p(lo, hi)
        need = (f"at least {v.seeds_for_any} seeds per variant are needed before any pair "
                "can be" if v.seeds_for_any else "")
        v.sentences.append(
            f"With {seeds} no pair can be distinguishable, whatever the data: the smallest "
            f"possible p is 2/C({lo + hi}, {lo}) = {floor:.3g}, times {v.pairs} pair"
            f"{'s' if v.pairs != 1 else ''} (Holm) = {v.pairs * floor:.3g} ≥ {alpha:g}; "
            f"{need}{'; ' if need else ''}{effect}{top}.")
    elif any({a, b} == set(p) for p in v.distinguishable):
        v.sentences.append(f"With {seeds} the top pair is already distinguishable; more "
                           "seeds would narrow the interval of its difference.")
    else:
        v.sentences.append(f"{a} vs {b} is not distinguishable with {seeds}; {effect}{top}.")


def _short(v: DatasetVerdict) -> None:
    """One or two terminal lines."""
    m = v.metric
    if v.ranked and v.best:
        shown = v.lead is not None and v.runner_up not in v.best
        places = _lead_places(m, v.lead[0]) if shown else None
        first = (f"{v.dataset}: best {' = '.join(v.best)} "
                 f"({m} {_num(v.means[v.best[0]], m, places)}")
        if shown:
            lead, lo, hi = v.lead
            first += f", +{_num(lead, m, places)}" if lead >= 0 else f", {_num(lead, m, places)}"
            if np.isfinite(lo):
                first += f" [{_num(lo, m, places)}, {_num(hi, m, places)}]"
            first += f" over {v.runner_up}"
        first += ")"
        if v.instead_of:
            first += f" [the study's {v.instead_of} was not reported]"
        if len(v.means) >= 2:
            first += ("; distinguishable: " + ", ".join(f"{x} beats {y}"
                                                       for x, y in v.distinguishable)
                      if v.distinguishable else "; no pair distinguishable")
    else:
        first = f"{v.dataset}: not ranked" + (f" on {m}" if m else "") + f" ({v.unranked})"
    second = []
    if v.at_chance:
        second.append("at chance: " + ", ".join(v.at_chance))
    if v.chance_unknown:
        second.append("chance unknown: " + ", ".join(v.chance_unknown))
    if v.failed:
        second.append("failed: " + ", ".join(f"{g} {k}/{n}" for g, (k, n) in v.failed.items()))
    if v.unended:
        second.append("running: " + ", ".join(f"{g} {k}/{n}"
                                              for g, (k, n) in v.unended.items()))
    if v.diverged:
        second.append("diverged: " + ", ".join(f"{g} {k}/{n}"
                                               for g, (k, n) in v.diverged.items()))
    if v.ranked and len(v.means) >= 2 and v.seeds is not None:
        seeds = _seeds_text(v.seeds).replace(" seeds per variant", " seeds/variant")
        top = f"{v.best[0]} vs {v.runner_up}"
        if not v.any_possible:
            need = f"need ≥ {v.seeds_for_any}" if v.seeds_for_any else "need more"
            extra = f", ~{v.seeds_for_top} for {top}" if v.seeds_for_top else ""
            second.append(f"{seeds}: no pair can be distinguishable ({need}{extra})")
        elif any({v.best[0], v.runner_up} == set(p) for p in v.distinguishable):
            second.append(f"{seeds}: top pair distinguishable")
        elif v.seeds_for_top:
            second.append(f"{top} needs ~{v.seeds_for_top} seeds/variant")
        else:
            second.append(f"{top}: more seeds not expected to separate them")
    v.short = [first] + (["  " + "; ".join(second)] if second else [])


# --- output ----------------------------------------------------------------------------------


def verdict_sentences(df: pd.DataFrame, metric: str | None = None, mode: str | None = None,
                      **kwargs) -> list[str]:
    """Every sentence of :func:`verdict`, each dataset's prefixed with its name."""
    return [f"`{v.dataset}`: {s}" for v in verdict(df, metric, mode, **kwargs)
            for s in v.sentences]


def terminal_text(verdicts: list[DatasetVerdict]) -> str:
    """The verdict for the terminal: a heading, then one or two lines per dataset."""
    if not verdicts:
        return "verdict: no trial runs"
    lines = ["verdict (docs/verdict.md; distinguishable: Mann–Whitney, Holm p < 0.05):"]
    for v in verdicts:
        lines += ["  " + line for line in v.short]
    return "\n".join(lines)
