"""``## How to read this report``: what each column, rule and test of the report means."""

from __future__ import annotations

from pathlib import Path

from harness import names
from harness.reports import provenance
from harness.reports.context import ReportContext
from harness.reports.runs import MEDIAN_BY
from harness.reports.section import Section


class HowToRead(Section):
    """Definitions: the compared runs, intervals, pairwise tests, chance, statuses and the
    coverage values; for image studies also the image metrics, the real-data floor and
    provenance."""

    def write(self, ctx: ReportContext) -> list[Path]:
        ctx.doc.h(2, "How to read this report")
        ctx.doc.ul(items(ctx.n_resamples, ctx.seed, images=not ctx.image_summary.empty))
        return []


def items(n_resamples: int = 2000, seed: int = 0, images: bool = False) -> list[str]:
    """The definitions, one list item each; ``images`` adds those of image studies."""
    comparisons = (
        f"**Comparisons** use the `{names.PHASE_SEEDS}` phase: each variant's best search "
        "configuration re-run on fresh seeds (a pair without seeds-phase runs falls back to all "
        "its runs; its phase column says `all`). Values are mean ± standard deviation over the "
        "runs that finished and reported the metric (ddof=1; no ± for a single value); `n` counts "
        "every run: failed or interrupted ones are in `n` and the status counts, not in the "
        "means. Runs stopped early (collapsed, D overpowers, diverged, pruned) count in the "
        "means too, with the values of their last evaluation."
    )
    status = (
        f"`{names.TAG_STATUS}` is the first that applies, in this order: "
        f"`{names.STATUS_DIVERGED}` -- a logged loss was NaN/inf or its magnitude exceeded the "
        "divergence limit (training stops there); "
        f"`{names.STATUS_D_OVERPOWERS}` -- over the tail of the history mean D(x) >= 1 - m, mean "
        "D(G(z)) <= m and the generator's gradient norm has vanished: the discriminator wins; "
        f"`{names.STATUS_COLLAPSED}` -- each of the last few evaluations covered at most "
        "max(1, floor(collapse_fraction × n_modes)) modes; "
        f"`{names.STATUS_OK}` otherwise. `{names.STATUS_FAILED}` means the trial raised an "
        f"error, `{names.STATUS_STOPPED}` that it was interrupted, `{names.STATUS_PRUNED}` "
        "that the study's search pruner stopped it (search phase only). A trial stopped "
        "early for a status listed in `diagnostics.stop_early` has that status (see "
        "*Early stopping*)."
    )
    stability = (
        f"`{names.STABILITY_SCORE}` -- the fraction of all modes that stayed covered at *every* "
        "evaluation in the second half of training: 1.0 means all modes were found and held, "
        "0.0 means none was held throughout (or the trial diverged)."
    )
    hops = (
        f"`{names.MODE_HOPS}` (in report.csv) -- how many times the set of covered modes changed "
        "between consecutive evaluations (a generator hopping from mode to mode has many)."
    )
    full = (
        f"`{names.STEPS_TO_FULL_COVERAGE}` -- the first evaluation step at which every mode was "
        "covered; the table shows its mean over the runs that got there and how many did (k/n)."
    )
    coverage = (
        f"`{names.MODES_COVERED}` -- modes with high-quality samples (within 3 standard "
        f"deviations of a centre); `{names.HQ_FRACTION}` -- the fraction of high-quality "
        f"samples; `{names.MODE_KL}` -- KL divergence of the mode histogram to uniform (lower "
        "is better)."
    )
    intervals = (
        "**95% CI** -- of the study's metric (of modes covered where the runs do not report "
        "it): a percentile bootstrap interval of the mean: the values "
        f"are resampled with replacement {n_resamples} times (numpy generator seeded with "
        f"{seed}, so the report is reproducible) and the 2.5% and 97.5% quantiles of the "
        "resampled means are shown (a dash for fewer than 2 values). With few seeds such "
        "intervals are wide *and* under-cover: a resample of 3 values can only take a few "
        "distinct means, so the interval is narrower than the real uncertainty and covers the "
        "true mean less often than 95% of the time. Treat it as a description of the spread."
    )
    pairwise = (
        f"**Pairwise comparisons** -- per dataset, every pair of variants on the study's "
        f"metric (where the runs do not report it, `{names.MODES_COVERED}`, else the first of "
        f"{', '.join(f'`{m}`' for m in MEDIAN_BY[1:])} they report) over the seeds-phase "
        "runs that did not fail: the difference of "
        "means with its bootstrap 95% interval (each variant resampled independently), the "
        "two-sided Mann–Whitney U p-value (exact for small groups, with ties too, by "
        "enumerating the splits; normal approximation for large ones), and that p "
        "Holm-adjusted over all pairs of the dataset. A pair is "
        "*distinguishable* when the adjusted p is below 0.05. Groups of n_a and n_b runs "
        "cannot give a p below 2/C(n_a + n_b, n_a): 0.1 for 3 seeds against 3."
    )
    chance = (
        "**Chance** -- beside each coverage value, \"(noise x)\" is what a generator that "
        "ignores the data scores with the same number of samples (the mean of the runs' "
        f"`{names.CHANCE_PREFIX}<value>` metrics). A variant is **at chance** on a dataset "
        "when the mean of a deciding value (e.g. hq fraction) over its finished runs does "
        f"not beat the bound its runs logged (`{names.CHANCE_BOUND_PREFIX}<value>`: beyond "
        "every data-ignoring draw and 10× their mean); its mode count then says nothing "
        "about learning the data. *chance unknown* where no chance level was logged -- "
        "never read as 0. The **Verdict** at the top is computed from these tables: the best "
        "variant on the study's metric, the pairs that are distinguishable (as in *Pairwise "
        "comparisons*, on that metric), which results are at chance, failures, and what more "
        "seeds would buy (docs/verdict.md, docs/chance.md)."
    )
    items = [comparisons, intervals, pairwise, chance, status, stability, hops, full, coverage]
    if images:
        items.append(
            f"**Image metrics** -- `{names.FID}` (Fréchet distance between the feature "
            "statistics of generated and real images; lower is better), "
            f"`{names.IS_MEAN}` (Inception score; higher is better) and `{names.KID_MEAN}` "
            "(kernel Inception distance; lower is better), all three on the features of the "
            f"extractor the `{names.TAG_FIDELITY_EXTRACTOR}` tag names; `{names.PRECISION}` / "
            f"`{names.RECALL}` (the fraction of generated samples on the real manifold / of "
            "real samples on the generated one; higher is better); "
            f"`{names.COND_ACCURACY}` (conditional GAN: how often the harness classifier "
            f"sees the class the sample was generated for) and `{names.CODE_ACCURACY}` "
            "(InfoGAN: the categorical code as class labels under the best one-to-one "
            "matching of code values to classes); on image datasets the modes are the "
            "classes the harness classifier recognises.")
        items.append(
            f"**Real-data floor** -- `{names.FID_FLOOR}`: the FID that real images neither the "
            "feature extractor (the harness classifier) nor the reference contains score "
            "against the same reference, at the run's sample count -- what a generator "
            "indistinguishable from the data scores. The default reference of the `mnist` "
            "datasets is disjoint from the classifier's training images but part of the "
            "GAN's, so a generator that reproduces its training images can score below the "
            "floor: such runs are flagged *possible memorisation*. The floor is itself an "
            "estimate from a few "
            "thousand real images (about ±0.5–1 FID on MNIST), so a FID just below it reads "
            "as *at the floor*; see docs/fidelity.md.")
        items.append(
            "**Provenance** -- image metrics depend on how they were made: the feature "
            "extractor and its weights, the real reference images, the sample counts, the "
            "classifier and the data split, which each run records in its tags "
            f"({provenance.patterns()}). Where the compared runs of a dataset differ in any "
            "of them, the report refuses to rank them: it names the differing tags and which "
            "variants have which values, shows the numbers per provenance group and marks no "
            "winner.")
    return items
