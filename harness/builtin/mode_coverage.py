"""``mode_coverage``: the VEEGAN/PacGAN mode-coverage protocol as a registered metric."""

from harness.metrics import ModeCoverage
from harness.registry import register_metric

register_metric("mode_coverage", ModeCoverage)
