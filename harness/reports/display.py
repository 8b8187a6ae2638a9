"""How the report shows a metric's values: their label, their decimals, which way is better.

Every lookup of a label, a number of decimals or a direction in :mod:`harness.reports` goes
through the functions here, so the tables below are the only place such facts live. The
function names are the stable interface; their bodies may consult other declarations.

* :func:`label` -- the words a table header, figure title or sentence uses for a value;
  the name itself for a value without one.
* :func:`decimals` -- the decimals a mean, sd or interval of it is shown with (3 when
  unknown); :func:`terminal_decimals` -- the same for the short terminal table.
* :func:`direction` -- ``"max"`` or ``"min"`` for a value a study may search
  (:func:`objectives`), None for any other (losses, D outputs, reference levels);
  :func:`higher_is_better` and :func:`arrow` read it.
* :func:`image_metrics` -- the values of image datasets the image table shows, in order;
  :func:`curve_metrics` -- those drawn over training steps in the image-metric figure.
"""

from __future__ import annotations

from harness import names, value_specs

# values no metric declares (the training histories); every metric's value, and the
# harness's own run values, are labelled where they are declared (harness.value_specs)
_LABELS = {
    names.LOSS_D: "loss_d (discriminator)",
    names.LOSS_G: "loss_g (generator)",
    names.D_REAL: "D(x)",
    names.D_FAKE: "D(G(z)) before G step",
    names.D_FAKE_AFTER: "D(G(z)) after G step",
    names.CRITIC_REAL: "critic f(x)",
    names.CRITIC_FAKE: "critic f(G(z)) before G step",
    names.CRITIC_GAP: "critic gap f(x) - f(G(z))",
    names.LOSS_Q: "loss_q (InfoGAN mutual information)",
    names.LOSS_CYCLE: "loss_cycle (CycleGAN round trips)",
}
_DEFAULT_DECIMALS = 3
# the summary's column order for the built-in objectives; a plugin's objectives follow them
_OBJECTIVE_ORDER = (names.MODES_COVERED, names.HQ_FRACTION, names.MODE_KL,
                    names.STABILITY_SCORE, names.FID, names.IS_MEAN, names.KID_MEAN,
                    names.PRECISION, names.RECALL, names.CODE_ACCURACY, names.COND_ACCURACY,
                    names.CYCLE_ERROR, names.TRANSLATION_ACCURACY, names.FID_AB,
                    names.FID_BA, names.XY_FINAL_DISTANCE)
# the terminal table is read at a glance: mode counts with one decimal ("7.7 ± 0.6 / 8")
_TERMINAL_DECIMALS = {names.MODES_COVERED: 1}
# IS and KID are shown by their per-run means; the two-way translators' values last
_IMAGE_METRICS = (names.FID, names.IS_MEAN, names.KID_MEAN, names.PRECISION, names.RECALL,
                  names.COND_ACCURACY, names.CODE_ACCURACY, names.TRANSLATION_ACCURACY,
                  names.CYCLE_ERROR, names.FID_AB, names.FID_BA)
_CURVE_METRICS = (names.FID, names.IS_MEAN, names.TRANSLATION_ACCURACY, names.CYCLE_ERROR)
# coverage values are read as counts and fractions: their headers carry no arrow
_NO_ARROW = (names.MODES_COVERED, names.HQ_FRACTION, names.STABILITY_SCORE)


def _declared(name: str) -> value_specs.ValueSpec | None:
    """What a registered metric (or the harness) declares for ``name``, which wins over the
    tables here; those keep the values no metric provides (losses, D outputs). The first
    lookup loads the installed plugins (``harness.plugins.load_entry_points``)."""
    return value_specs.spec(name)


def label(name: str) -> str:
    """The words for ``name``'s values ("modes covered", "FID A→B"); ``name`` when it has
    none."""
    spec = _declared(name)
    return spec.label if spec is not None else _LABELS.get(name, name)


def decimals(name: str) -> int:
    """The decimals ``name``'s means, sds and intervals are shown with."""
    spec = _declared(name)
    return spec.decimals if spec is not None else _DEFAULT_DECIMALS


def terminal_decimals(name: str) -> int:
    """The decimals of ``name`` in the terminal's summary table."""
    return _TERMINAL_DECIMALS.get(name, decimals(name))


def direction(name: str) -> str | None:
    """``"max"`` when higher values of ``name`` are better, ``"min"`` when lower ones are,
    None when it is no objective."""
    spec = _declared(name)
    return spec.direction if spec is not None else None


def objectives() -> tuple[str, ...]:
    """The values a study may search (those with a :func:`direction`), in the order the
    summary shows them."""
    declared = value_specs.objectives()
    return (tuple(n for n in _OBJECTIVE_ORDER if n in declared)
            + tuple(sorted(n for n in declared if n not in _OBJECTIVE_ORDER)))


def higher_is_better(name: str, mode: str | None = None) -> bool:
    """Whether higher is better: ``mode`` (a study's ``search.direction``) when given, else
    :func:`direction`; a value without a direction counts as higher-is-better."""
    return (mode or direction(name) or "max") == "max"


def arrow(name: str, mode: str | None = None) -> str:
    """``↑`` or ``↓``: the better direction as a header shows it."""
    return "↑" if higher_is_better(name, mode) else "↓"


def headed(name: str) -> str:
    """:func:`label` with its :func:`arrow`, except for the coverage values."""
    return label(name) if name in _NO_ARROW else f"{label(name)} {arrow(name)}"


def image_metrics() -> tuple[str, ...]:
    """The image-dataset values of the image table, in its column order."""
    return _IMAGE_METRICS


def curve_metrics() -> tuple[str, ...]:
    """The image-dataset values drawn over training steps; the figure exists when a run
    logged one of them."""
    return _CURVE_METRICS
