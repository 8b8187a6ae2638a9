"""``r2``: R1's zero-centred gradient penalty on generated samples (Mescheder et al. 2018, eq. 10).

See :mod:`harness.builtin.r1` for the penalty and its lazy ``every``.
"""

from __future__ import annotations

from harness.builtin.r1 import ZeroCentred
from harness.registry import register_trick


@register_trick("r2")
class R2(ZeroCentred):
    """R2 (Mescheder et al. 2018): adds γ/2 · E‖∇D(G(z))‖² to D's loss; every > 1 is lazy (×every)."""

    def _points(self, ctx):
        return ctx.fake, ctx.fake_y
