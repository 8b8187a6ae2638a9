"""Test plugin: the first vectorized trial to report its first evaluation to Tune dies.

Imported (as a study plugin) in every trial process, it wraps
:meth:`harness.vector.trial.VectorTrainer.run` so that right after the first evaluation's
combined checkpoint reached Tune the process exits on the spot (``os._exit``: no cleanup,
like a lost node) -- once: the file named by ``$HARNESS_TEST_VECTOR_DIES`` records it.
Without that variable it does nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.vector import trial as vector_trial

ENV = "HARNESS_TEST_VECTOR_DIES"

if not getattr(vector_trial.VectorTrainer.run, "_dies_once", False):
    _run = vector_trial.VectorTrainer.run

    def run(self, reporters, after_evaluation=None):
        marker = os.environ.get(ENV)

        def after(step, values, checkpoint):
            if after_evaluation is not None:
                after_evaluation(step, values, checkpoint)
            if marker and not Path(marker).exists():
                Path(marker).write_text(f"died at {step}")
                os._exit(1)

        return _run(self, reporters, after)

    run._dies_once = True
    vector_trial.VectorTrainer.run = run
