"""``historical_averaging``: penalty ``weight * ||theta - (1/t) sum_i theta_i||^2`` (Salimans et al. 2016, 3.3)."""

from __future__ import annotations

from typing import Any, Literal

import torch

from harness.models import GANPair
from harness.registry import register_trick
from harness.tricks import StepContext, Trick


class RunningMean:
    """The mean of a parameter list over every update so far (t counts the updates)."""

    def __init__(self, params: list[torch.nn.Parameter]):
        self.params = params
        self.t = 1
        self.mean = [p.detach().clone() for p in params]  # theta_0 counts as the first

    def update(self) -> None:
        self.t += 1
        with torch.no_grad():
            for m, p in zip(self.mean, self.params):
                m.add_(p.detach() - m, alpha=1.0 / self.t)

    def penalty(self) -> torch.Tensor:
        return sum((p - m).pow(2).sum() for p, m in zip(self.params, self.mean))

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "mean": [m.clone() for m in self.mean]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        for m, saved in zip(self.mean, state["mean"]):
            m.copy_(saved)


@register_trick("historical_averaging")
class HistoricalAveraging(Trick):
    """Adds weight * ||theta - mean of past theta||^2 to the loss of G, D or both."""

    changes = frozenset({"penalty"})

    def __init__(self, weight: float = 1e-3, apply_to: Literal["g", "d", "both"] = "both"):
        if weight <= 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        self.weight, self.apply_to = weight, apply_to
        self.avg: dict[str, RunningMean] = {}

    def start(self, gan: GANPair) -> None:
        # after every setup (one may replace a network) and the move to the device
        if self.apply_to in ("g", "both"):
            self.avg["g"] = RunningMean(list(gan.generator.parameters()))
        if self.apply_to in ("d", "both"):
            self.avg["d"] = RunningMean(list(gan.discriminator.parameters()))

    def d_loss(self, value: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return value + self.weight * self.avg["d"].penalty() if "d" in self.avg else value

    def g_loss(self, value: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return value + self.weight * self.avg["g"].penalty() if "g" in self.avg else value

    def after_d_step(self, gan: GANPair, step: int) -> None:
        if "d" in self.avg:
            self.avg["d"].update()

    def after_g_step(self, gan: GANPair, step: int) -> None:
        if "g" in self.avg:
            self.avg["g"].update()

    def state_dict(self) -> dict[str, Any]:
        return {k: v.state_dict() for k, v in self.avg.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            self.avg[k].load_state_dict(v)
