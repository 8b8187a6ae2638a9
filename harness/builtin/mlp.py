"""``mlp``: fully connected generator and discriminator for low-dimensional data.

Three presets:

* ``default``: G and D with 3 hidden layers of 128 ReLU units, z in R^2 -- fast
  enough for a laptop study (about 250 steps/s on one CPU thread at batch 64);
* ``pacgan``: the architecture of PacGAN's 2-D experiments (Lin et al. 2018): G with
  z in R^2 and 4 hidden layers of 400 units with batch norm and ReLU; D with 3 maxout
  layers of 200 units and 5 pieces; every weight drawn from N(0, 0.02) and every bias 0,
  as the paper's code (``IsotropicGaussian(0.02)``, ``Constant(0)``);
* ``mnist``: the MNIST MLP GAN of the lecture (and of the common PyTorch tutorials):
  z in R^100, G 256-512-1024 and D 1024-512-256 with LeakyReLU(0.2), dropout 0.3 in D,
  tanh output for images in [-1, 1]; train it with Adam lr 2e-4 and the minimax/BCE loss.

``init`` is how the linear layers start: ``pytorch`` (PyTorch's own uniform initialisation,
the ``default`` and ``mnist`` presets) or ``normal`` (weights from N(0, 0.02), biases 0: the
``pacgan`` preset; batch norm keeps scale 1 and shift 0 either way). It matters for PacGAN:
on grid25 a packed D from PyTorch's initialisation kept PacGAN3 at chance far longer than
the paper's (docs/reproductions.md).

Any explicitly given parameter overrides the preset's value. A parameter left to the preset
stays ``None`` in the trial's config; its MLflow param records the preset's value
(:meth:`MLP.derived_params`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from harness.data import Dataset
from harness.models import GANPair, Model
from harness.registry import register_model
from harness.vector.linear import StackedLinear, StackedMaxout, StackedMLP

_PLAIN = dict(activation="relu", g_output="linear", d_dropout=0.0)
PRESETS = {
    "default": dict(z_dim=2, g_hidden=(128, 128, 128), d_hidden=(128, 128, 128),
                    g_batchnorm=False, d_maxout=1, init="pytorch", **_PLAIN),
    "pacgan": dict(z_dim=2, g_hidden=(400, 400, 400, 400), d_hidden=(200, 200, 200),
                   g_batchnorm=True, d_maxout=5, init="normal", **_PLAIN),
    "mnist": dict(z_dim=100, g_hidden=(256, 512, 1024), d_hidden=(1024, 512, 256),
                  g_batchnorm=False, d_maxout=1, activation="leaky_relu", g_output="tanh",
                  d_dropout=0.3, init="pytorch"),
}
#: the standard deviation of ``init: normal`` (DCGAN's and PacGAN's code)
NORMAL_STD = 0.02


def normal_init(module: nn.Module) -> None:
    """Every linear layer's weights from N(0, :data:`NORMAL_STD`) and its bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, NORMAL_STD)
            nn.init.zeros_(m.bias)


def activation(name: str) -> nn.Module:
    return nn.LeakyReLU(0.2) if name == "leaky_relu" else nn.ReLU()


class Maxout(nn.Module):
    """Linear layer followed by the max over ``pieces`` affine pieces per unit."""

    def __init__(self, n_in: int, n_out: int, pieces: int):
        super().__init__()
        self.n_out, self.pieces = n_out, pieces
        self.linear = nn.Linear(n_in, n_out * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], self.n_out, self.pieces).amax(dim=-1)

    @classmethod
    def stack_layers(cls, layers: Sequence[Maxout]) -> StackedMaxout:
        """The copies of one maxout layer as one (:mod:`harness.vector.linear`)."""
        if len({m.pieces for m in layers}) != 1:
            raise ValueError("cannot stack maxout layers with different numbers of pieces")
        return StackedMaxout(StackedLinear.from_linears([m.linear for m in layers]),
                             layers[0].pieces)


class MLPDiscriminator(nn.Module):
    """Hidden layers (ReLU or maxout) followed by one logit per sample.

    :meth:`features` exposes the last hidden layer for tricks such as feature matching.
    """

    def __init__(self, n_in: int, hidden: tuple[int, ...], maxout: int, act: str = "relu",
                 dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        self.hidden_ends: list[int] = []  # index in body just past each hidden layer
        width = n_in
        for h in hidden:
            layers += [Maxout(width, h, maxout)] if maxout > 1 else [nn.Linear(width, h),
                                                                     activation(act)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            self.hidden_ends.append(len(layers))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    def features(self, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Activations after hidden layer ``layer`` (Python indexing; -1 = the last)."""
        n = len(self.hidden_ends)
        if not -n <= layer < n:
            raise ValueError(f"layer {layer} out of range for {n} hidden layers")
        return self.body[: self.hidden_ends[layer]](x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.flatten(1))).squeeze(-1)

    @classmethod
    def stack_copies(cls, copies: Sequence[MLPDiscriminator]) -> StackedMLP:
        """The copies as one network of batched products (:mod:`harness.vector.stacking`);
        ValueError for dropout, which draws from the global RNG."""
        return StackedMLP.from_layers("discriminator", [
            [(f"body.{i}.", m) for i, m in enumerate(d.body)] + [("head.", d.head)]
            for d in copies])


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, hidden: tuple[int, ...], out_shape: tuple[int, ...],
                 batchnorm: bool, act: str = "relu", output: str = "linear"):
        super().__init__()
        layers: list[nn.Module] = []
        width = z_dim
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(activation(act))
            width = h
        layers.append(nn.Linear(width, math.prod(out_shape)))
        if output == "tanh":
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)
        self.out_shape = out_shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)

    @classmethod
    def stack_copies(cls, copies: Sequence[MLPGenerator]) -> StackedMLP:
        """The copies as one network of batched products and, with batch norm, per-copy
        normalisations (:mod:`harness.vector.stacking`)."""
        return StackedMLP.from_layers("generator", [
            [(f"net.{i}.", m) for i, m in enumerate(g.net)] for g in copies],
            out_shape=copies[0].out_shape)


@register_model("mlp")
class MLP(Model):
    """MLP generator/discriminator; presets 'default' (3x128 ReLU), 'pacgan' (published), 'mnist' (lecture)."""

    family = "mlp"
    #: the networks stack (``stack_copies``): a study's ``vectorize`` may train copies as one
    vectorizable = True

    def __init__(
        self,
        preset: Literal["default", "pacgan", "mnist"] = "default",
        z_dim: int | None = None,
        g_hidden: tuple[int, ...] | None = None,
        d_hidden: tuple[int, ...] | None = None,
        g_batchnorm: bool | None = None,
        d_maxout: int | None = None,
        activation: Literal["relu", "leaky_relu"] | None = None,
        g_output: Literal["linear", "tanh"] | None = None,
        d_dropout: float | None = None,
        init: Literal["pytorch", "normal"] | None = None,
    ):
        given = dict(z_dim=z_dim, g_hidden=g_hidden, d_hidden=d_hidden,
                     g_batchnorm=g_batchnorm, d_maxout=d_maxout, activation=activation,
                     g_output=g_output, d_dropout=d_dropout, init=init)
        cfg = {**PRESETS[preset], **{k: v for k, v in given.items() if v is not None}}
        if cfg["z_dim"] < 1:
            raise ValueError(f"z_dim must be >= 1, got {cfg['z_dim']}")
        if cfg["d_maxout"] < 1:
            raise ValueError(f"d_maxout must be >= 1, got {cfg['d_maxout']}")
        if not 0 <= cfg["d_dropout"] < 1:
            raise ValueError(f"d_dropout must be in [0, 1), got {cfg['d_dropout']}")
        for key in ("g_hidden", "d_hidden"):
            if not cfg[key] or min(cfg[key]) < 1:
                raise ValueError(f"{key} must be a non-empty list of positive widths")
        self.cfg = cfg
        #: the parameters left to the preset (``None``): what :meth:`derived_params` reports
        self.from_preset = tuple(k for k, v in given.items() if v is None)

    def derived_params(self) -> dict[str, object]:
        """The preset's values of the parameters left at ``None`` (logged as MLflow params)."""
        return {k: self.cfg[k] for k in self.from_preset}

    def capabilities(self) -> frozenset[str]:
        return frozenset({"d_features", "g_plain", "d_plain"}
                         | ({"g_batchnorm"} if self.cfg["g_batchnorm"] else set()))

    def build(self, dataset: Dataset) -> GANPair:
        c = self.cfg
        shape = tuple(dataset.shape)
        g = MLPGenerator(c["z_dim"], tuple(c["g_hidden"]), shape, c["g_batchnorm"],
                         c["activation"], c["g_output"])
        d = MLPDiscriminator(math.prod(shape), tuple(c["d_hidden"]), c["d_maxout"],
                             c["activation"], c["d_dropout"])
        if c["init"] == "normal":
            normal_init(g)
            normal_init(d)
        return GANPair(generator=g, discriminator=d, z_dim=c["z_dim"])
