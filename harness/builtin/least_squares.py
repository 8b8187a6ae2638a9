"""``least_squares``: LSGAN (Mao et al. 2017) with configurable a/b/c targets."""

import torch

from harness.losses import Loss
from harness.registry import register_loss


@register_loss("least_squares")
class LeastSquares(Loss):
    """D: 1/2 E[(D(x)-b)^2] + 1/2 E[(D(G(z))-a)^2]; G: 1/2 E[(D(G(z))-c)^2]. D's output is raw."""

    #: a pure function of the logits: vectorized trials apply it per copy
    vectorizable = True

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0):
        if a == b:
            raise ValueError(f"the fake target a and the real target b must differ (both {a})")
        self.a, self.b, self.c = a, b, c

    @staticmethod
    def _squared(real_logits, fake_logits, real_target: float, fake_target: float):
        return (0.5 * ((real_logits - real_target) ** 2).mean()
                + 0.5 * ((fake_logits - fake_target) ** 2).mean())

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return self._squared(real_logits, fake_logits, self.b, self.a)

    def d_loss_targets(self, real_logits, fake_logits, real_target, fake_target):
        # targets on the 0 (fake) .. 1 (real) scale map onto a .. b
        return self._squared(real_logits, fake_logits,
                             self.a + real_target * (self.b - self.a),
                             self.a + fake_target * (self.b - self.a))

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((fake_logits - self.c) ** 2).mean()

    def d_prob(self, logits: torch.Tensor) -> torch.Tensor:
        # rescale so that the fake target reads 0 and the real target reads 1
        return (logits - self.a) / (self.b - self.a)
