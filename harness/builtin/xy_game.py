"""``xy_game``: the bilinear minimax game V(x, y) = x·y, the smallest demo of GAN dynamics.

Player x minimises V, player y maximises it; the unique equilibrium (Nash and saddle
point) is (0, 0). The gradients are dV/dx = y and dV/dy = x, so with plain gradient steps
(x's step ``lr_g``, y's step ``lr_d``, both times the model's ``lr_scale``):

* ``simultaneous`` -- both players step from the same point:
  ``x <- x - lr_x·y``, ``y <- y + lr_y·x``. The iterate spirals *outwards*: with
  ``lr_x = lr_y = lr`` its distance to (0, 0) grows by exactly sqrt(1 + lr²) every step
  (sqrt(1 + lr_x·lr_y) per step in general).
* ``alternating`` -- y steps first (the maximiser, as D does in Algorithm 1), then x
  answers the new y: ``y <- y + lr_y·x``, ``x <- x - lr_x·y``. The map has determinant 1
  and for lr_x·lr_y < 4 its eigenvalues lie on the unit circle: the iterate *orbits*
  (a closed ellipse), bounded, neither converging nor diverging.
* ``optimistic`` -- optimistic gradient descent-ascent (OGDA, Daskalakis et al. 2018):
  ``θ_{t+1} = θ_t - 2·lr·g_t + lr·g_{t-1}`` for each player (ascent for y). The first
  step uses g_{-1} = g_0, i.e. it is a plain simultaneous step. It *converges* to (0, 0).
* ``average: true`` reports the running mean of the iterates (the start point included)
  instead of the last one -- the classic fix: the mean of an orbit is its centre. It
  converges as long as the iterates themselves grow slower than the mean shrinks (for
  the simultaneous update, roughly lr²·steps small; at lr 0.05 over 2,000 steps the mean
  ends at 0.11 of the start distance while the iterate has grown twelvefold).

The game is deterministic: a trial's seed changes nothing, every seed retraces the same
orbit.

What a trial records:

* every ``log_every`` steps the history row ``x``, ``y`` and ``xy_distance`` of the
  *reported* point (the mean of the iterates when ``average``), all after the step, plus
  ``loss_g`` = V and ``loss_d`` = -V at the current iterate (each player's loss), so the
  budget loop's divergence stop (|loss| > ``diagnostics.diverge_loss``) applies;
* at every evaluation the metric ``equilibrium_distance`` (the dataset's default):
  ``xy_final_distance``, the distance of the reported point to (0, 0) -- at the last
  evaluation the final distance --, and ``xy_distance_ratio``, that distance over the start
  point's. The final numbers come from a registered metric rather than from overriding the
  loop's ``_finish``: evaluations are where the harness records scored values (the search
  reads its objective, here ``xy_final_distance``, from the last one), a metric is listed by
  ``harness variants`` and chosen in a study file like any other, and ``_finish`` is the
  loop's private bookkeeping shared by every game;
* at the end the tag ``orbit`` (:func:`classify_orbit`): ``converging``, ``oscillating``
  or ``diverging``;
* pictures: the orbit so far (x against y, the equilibrium marked) at every evaluation
  and as ``final_samples.png``.

``train.batch_size``, ``beta1``, ``beta2`` and ``eval_samples`` have no meaning here (plain
SGD on two numbers, no data, no noise); ``d_steps`` other than 1 is refused when the trial
starts, as are a loss or tricks (also refused when the study is validated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from harness import names
from harness.config import DiagnosticSettings, TrainSettings
from harness.data import Dataset
from harness.loop import TrainingLoop
from harness.metrics import EvalContext, Evaluation, Metric
from harness.models import Model
from harness.registry import register_dataset, register_metric, register_model
from harness.value_specs import ValueSpec

#: the model capability "samples are the two players' position (x, y)"; the
#: ``equilibrium_distance`` metric needs it, so a GAN on the ``xy_game`` dataset is refused
XY_PLAYERS = "xy_players"

#: :func:`classify_orbit`: converging when final distance < CONVERGING_BELOW × the start's
CONVERGING_BELOW = 0.5
#: :func:`classify_orbit`: diverging when final distance > DIVERGING_ABOVE × the start's
DIVERGING_ABOVE = 2.0

UPDATES = ("simultaneous", "alternating", "optimistic")


def classify_orbit(distances: Sequence[float], diverged: bool = False,
                   converging_below: float = CONVERGING_BELOW,
                   diverging_above: float = DIVERGING_ABOVE) -> str:
    """How an orbit behaved, from its distances to the equilibrium over time.

    ``distances[0]`` is the start's distance, ``distances[-1]`` the final one; with
    r = final / start:

    * ``diverging`` when the loop stopped as diverged (``diverged``), any distance is
      NaN or infinite, or r > ``diverging_above`` (default 2);
    * ``converging`` when r < ``converging_below`` (default 0.5);
    * ``oscillating`` otherwise: the orbit stayed within a factor 2 of where it began.

    Only the two ends count: a slow outward spiral (simultaneous updates with a small
    step) that has not yet doubled its distance is ``oscillating`` over that budget.
    """
    values = [float(d) for d in distances]
    if len(values) < 2:
        raise ValueError(f"classify_orbit needs the start and the final distance (at least 2 "
                         f"values), got {len(values)}")
    if not 0 < converging_below <= 1 <= diverging_above:
        raise ValueError(f"thresholds must satisfy 0 < converging_below <= 1 <= "
                         f"diverging_above, got {converging_below} and {diverging_above}")
    start = values[0]
    if not (math.isfinite(start) and start > 0):
        raise ValueError(f"the start distance must be a positive number, got {start}")
    if any(v < 0 for v in values if not math.isnan(v)):
        raise ValueError("distances cannot be negative")
    if diverged or not all(math.isfinite(v) for v in values):
        return names.ORBIT_DIVERGING
    ratio = values[-1] / start
    if ratio > diverging_above:
        return names.ORBIT_DIVERGING
    if ratio < converging_below:
        return names.ORBIT_CONVERGING
    return names.ORBIT_OSCILLATING


# --- the dataset: where the game starts ---------------------------------------------------


@register_dataset("xy_game")
class XYGame(Dataset):
    """The xy game's start point (x0, y0); the game itself is the `xy_game` model."""

    default_metrics = ("equilibrium_distance",)

    def __init__(self, x0: float = 1.0, y0: float = 1.0):
        for key, value in (("x0", x0), ("y0", y0)):
            if not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, got {value}")
        if x0 == 0 and y0 == 0:
            raise ValueError("the start point (x0, y0) = (0, 0) is the equilibrium itself; "
                             "choose a start with x0 != 0 or y0 != 0")
        self.x0, self.y0 = float(x0), float(y0)

    @property
    def shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def start_distance(self) -> float:
        return math.hypot(self.x0, self.y0)

    def train_data(self) -> torch.Tensor:
        """The start point as the only "sample", shape (1, 2), float64 (there is no data)."""
        return torch.tensor([[self.x0, self.y0]], dtype=torch.float64)


# --- the metric -----------------------------------------------------------------------------


@register_metric("equilibrium_distance")
class EquilibriumDistance(Metric):
    """Distance of the xy game's reported point to the equilibrium (0, 0), and over the start's."""

    values = {names.XY_FINAL_DISTANCE: ValueSpec("final distance", 3, "min"),
              names.XY_DISTANCE_RATIO: ValueSpec("distance ratio", 3)}
    requires = frozenset({XY_PLAYERS})

    def applies_to(self, dataset: Dataset) -> bool:
        return isinstance(dataset, XYGame)

    def evaluate(self, samples: torch.Tensor, dataset: Dataset,
                 context: EvalContext | None = None) -> Evaluation:
        if tuple(samples.shape) != (1, 2):
            raise ValueError(f"equilibrium_distance scores the players' position, one (x, y) "
                             f"row of shape (1, 2); got shape {tuple(samples.shape)}")
        distance = float(torch.linalg.vector_norm(samples[0].to(torch.float64)))
        return Evaluation(values={names.XY_FINAL_DISTANCE: distance,
                                  names.XY_DISTANCE_RATIO: distance / dataset.start_distance})


# --- the model and its loop -----------------------------------------------------------------


@dataclass
class XYPlayers:
    """What the ``xy_game`` model builds: the two players' positions, 0-d float64 tensors."""

    x: torch.Tensor
    y: torch.Tensor


@register_model("xy_game")
class XYGameModel(Model):
    """The bilinear game V(x, y) = x·y by gradient descent-ascent: `update` rule, `average` of iterates."""

    family = "xy_game"
    uses_loss = False
    accepts_tricks = False

    def __init__(self, update: Literal["simultaneous", "alternating", "optimistic"] = "simultaneous",
                 average: bool = False, lr_scale: float = 1.0):
        if update not in UPDATES:
            raise ValueError(f"update must be one of {', '.join(UPDATES)}, got {update!r}")
        if not (math.isfinite(lr_scale) and lr_scale > 0):
            raise ValueError(f"lr_scale must be a positive number, got {lr_scale}")
        self.update, self.average, self.lr_scale = update, bool(average), float(lr_scale)

    def capabilities(self) -> frozenset[str]:
        return frozenset({XY_PLAYERS})

    def check(self, dataset: Dataset) -> None:
        if not isinstance(dataset, XYGame):
            raise ValueError(  # noqa: TRY004 -- Model.check's contract: ValueError
                f"the xy game is played on the 'xy_game' dataset (its start point), not on "
                f"{type(dataset).__name__} data of shape {tuple(dataset.shape)}; use a "
                f"dataset {{name: xy_game, params: {{x0: 1.0, y0: 1.0}}}}")

    def build(self, dataset: Dataset) -> XYPlayers:
        self.check(dataset)
        return XYPlayers(x=torch.tensor(dataset.x0, dtype=torch.float64),
                         y=torch.tensor(dataset.y0, dtype=torch.float64))

    def loop_class(self) -> type:
        return XYLoop


class XYLoop(TrainingLoop):
    """Gradient descent-ascent on V(x, y) = x·y; one step updates both players (module
    docstring). Constructed like :class:`harness.trainer.Trainer`."""

    def __init__(self, model: XYGameModel, gan: XYPlayers, loss: Any, dataset: Dataset,
                 metrics: list[Metric], settings: TrainSettings, diagnostics: DiagnosticSettings,
                 seed: int, tricks=(), device: torch.device | str = "cpu", title: str = ""):
        if loss is not None:
            raise ValueError(f"the xy game has its own objective and takes no loss, got "
                             f"{type(loss).__name__}")
        if tricks:
            raise ValueError(f"the xy game takes no tricks, got "
                             f"{', '.join(type(t).__name__ for t in tricks)}")
        if settings.d_steps != 1:
            raise ValueError(f"the xy game updates each player once per step; train.d_steps "
                             f"must be 1, got {settings.d_steps}")
        model.check(dataset)
        super().__init__(dataset, metrics, settings, diagnostics, seed, device, title)
        self.model = model
        self.update, self.average = model.update, model.average
        self.lr_x = model.lr_scale * settings.lr_g
        self.lr_y = model.lr_scale * settings.lr_d
        self.x = gan.x.to(self.device, torch.float64)
        self.y = gan.y.to(self.device, torch.float64)
        self.start = (float(self.x), float(self.y))
        self.prev_gx: torch.Tensor | None = None  # optimistic: the previous step's gradients
        self.prev_gy: torch.Tensor | None = None
        self.n_iterates = 1  # the start point counts in the mean
        self.mean_x, self.mean_y = self.x.clone(), self.y.clone()

    # -- the game ------------------------------------------------------------------------
    def reported(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The point the run reports: the mean of the iterates with ``average``, else the last."""
        return (self.mean_x, self.mean_y) if self.average else (self.x, self.y)

    def train_step(self, measure: bool) -> dict[str, float] | None:
        x, y = self.x, self.y
        gx, gy = y, x  # dV/dx, dV/dy of V = x·y
        if self.update == "simultaneous":
            self.x, self.y = x - self.lr_x * gx, y + self.lr_y * gy
        elif self.update == "alternating":
            self.y = y + self.lr_y * x  # the maximiser first, as D in Algorithm 1
            self.x = x - self.lr_x * self.y  # then the minimiser against the new y
        else:  # optimistic
            px = gx if self.prev_gx is None else self.prev_gx
            py = gy if self.prev_gy is None else self.prev_gy
            self.x = x - self.lr_x * (2 * gx - px)
            self.y = y + self.lr_y * (2 * gy - py)
            self.prev_gx, self.prev_gy = gx, gy
        self.n_iterates += 1
        self.mean_x = self.mean_x + (self.x - self.mean_x) / self.n_iterates
        self.mean_y = self.mean_y + (self.y - self.mean_y) / self.n_iterates
        if not measure:
            return None
        rx, ry = self.reported()
        value = float(self.x * self.y)
        return {
            names.XY_X: float(rx),
            names.XY_Y: float(ry),
            names.XY_DISTANCE: float(torch.hypot(rx, ry)),
            names.LOSS_G: value,  # x minimises V
            names.LOSS_D: -value,  # y maximises V: its loss is -V
        }

    # -- evaluation ------------------------------------------------------------------------
    def sample(self) -> torch.Tensor:
        """The reported point as one (x, y) row, shape (1, 2), float64, on the CPU."""
        rx, ry = self.reported()
        return torch.stack([rx, ry]).reshape(1, 2).cpu()

    def eval_context(self) -> EvalContext:
        point = self.sample()
        return EvalContext(step=self.step, final=self._is_final(),
                           generate=lambda n: point.expand(n, 2).clone())

    def distance(self) -> float:
        rx, ry = self.reported()
        return float(torch.hypot(rx, ry))

    def summary_tags(self) -> dict[str, str]:
        start = math.hypot(*self.start)
        distances = [start, *(row[names.XY_DISTANCE] for _, row in self.history),
                     self.distance()]
        return {names.TAG_ORBIT: classify_orbit(distances, diverged=self.diverged)}

    def pictures(self, samples: torch.Tensor, title: str, prefix: str) -> dict[str, bytes]:
        """The orbit so far: the reported point's path (x against y) from the start, with
        the equilibrium (0, 0) marked."""
        from harness.plots import figure_png, plt

        xs = [self.start[0], *(row[names.XY_X] for _, row in self.history)]
        ys = [self.start[1], *(row[names.XY_Y] for _, row in self.history)]
        now = samples[0].tolist()
        xs.append(now[0])
        ys.append(now[1])
        pts = [(a, b) for a, b in zip(xs, ys) if math.isfinite(a) and math.isfinite(b)]
        fig, ax = plt.subplots(figsize=(3.6, 3.6), dpi=90)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color="tab:blue", linewidth=1,
                    label="mean of iterates" if self.average else "iterate")
        ax.plot(*self.start, "o", color="tab:green", markersize=5, label="start")
        if pts:
            ax.plot(*pts[-1], "s", color="tab:blue", markersize=5, label=f"step {self.step}")
        ax.plot(0, 0, "*", color="tab:red", markersize=10, label="equilibrium (0, 0)")
        ax.axhline(0, color="0.85", linewidth=0.8, zorder=0)
        ax.axvline(0, color="0.85", linewidth=0.8, zorder=0)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("x (minimises x·y)")
        ax.set_ylabel("y (maximises x·y)")
        ax.set_title(f"{title}\n{self.update}{' + average' if self.average else ''}, "
                     f"lr {self.lr_x:g} / {self.lr_y:g}", fontsize=8)
        ax.legend(fontsize=6, loc="upper right")
        return {f"{prefix}.png": figure_png(fig)}

    # -- checkpointing --------------------------------------------------------------------------
    def game_state(self) -> dict[str, Any]:
        def copy(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.detach().clone().cpu()

        return {"xy_game": {
            "x": copy(self.x), "y": copy(self.y),
            "prev_gx": copy(self.prev_gx), "prev_gy": copy(self.prev_gy),
            "n_iterates": self.n_iterates, "mean_x": copy(self.mean_x),
            "mean_y": copy(self.mean_y),
        }}

    def load_game_state(self, state: dict[str, Any]) -> None:
        s = state["xy_game"]

        def load(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.detach().clone().to(self.device, torch.float64)

        self.x, self.y = load(s["x"]), load(s["y"])
        self.prev_gx, self.prev_gy = load(s["prev_gx"]), load(s["prev_gy"])
        self.n_iterates = int(s["n_iterates"])
        self.mean_x, self.mean_y = load(s["mean_x"]), load(s["mean_y"])
