"""The built-in plugins: registered through the ``harness.plugins`` entry point.

Importing this package registers every built-in model, loss, trick, dataset and
metric, exactly as a third-party plugin package would.
"""

from harness.builtin import (  # noqa: F401  (imported for their registrations)
    cgan,
    class_modes,
    code_accuracy,
    cond_accuracy,
    cycle_error,
    cyclegan,
    dcgan,
    dragan,
    feature_matching,
    fidelity_metrics,
    gradient_penalty,
    hinge,
    historical_averaging,
    infogan,
    least_squares,
    maximum_likelihood,
    minibatch_discrimination,
    minimax,
    mixtures,
    mlp,
    mnist,
    mnist_pair,
    mode_coverage,
    non_saturating,
    one_sided_label_smoothing,
    packing,
    r1,
    r2,
    spectral_norm,
    translation_accuracy,
    translation_fid,
    virtual_batch_norm,
    wgan,
    wgan_gp,
    xy_game,
)
