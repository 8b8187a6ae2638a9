"""What the vectorized engine asks of plugins: declarations, never names.

The engine (:mod:`harness.vector.engine`) stacks N copies of a trial's networks and applies
its loss per copy. It names no plugin; plugins declare what it needs:

* a **network class** whose copies stack defines a classmethod ``stack_copies(copies)``
  returning one *stacked network* (:class:`StackedNetwork`) for the list of its
  separately built copies. A class usually lists each copy's layers to one of the
  engine's stackers, :meth:`harness.vector.linear.StackedMLP.from_layers` (batched
  products) or :meth:`harness.vector.conv.StackedConvNet.from_layers` (grouped
  convolutions), which refuse any layer they cannot stack exactly;
* a **model class** (:class:`harness.models.Model`) declares ``vectorizable = True`` when
  the unconditional networks its ``build`` returns define ``stack_copies`` and it plays
  the Trainer's game. It is read before anything is built, so a study with ``vectorize``
  passes over the other models without building their datasets and networks;
* a **loss class** (:class:`harness.losses.Loss`) declares ``vectorizable = True`` when its
  ``d_loss``, ``g_loss`` and ``d_prob`` are pure functions of the logits they get (no
  state kept between calls, no random draws): the engine calls them once per copy, or
  once for all copies under ``torch.vmap``, and either way copy ``k`` must get the value
  its single trial gets. A stateful loss (one counting its calls, say) would not.

Subclasses inherit a declaration; one that breaks its promise sets it back to False.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn


class StackedNetwork(Protocol):
    """What ``stack_copies`` returns: an ``nn.Module`` holding N copies of one network."""

    #: the device types on which ``vectorize: auto`` stacks it (:mod:`harness.vector.plan`);
    #: optional, every device when absent
    auto_devices: tuple[str, ...]

    @property
    def n_copies(self) -> int: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Copy-first in and out: ``z`` ``[N, batch, z_dim]`` -> samples
        ``[N, batch, *shape]`` (a generator), samples -> logits ``[N, batch]`` (a
        discriminator); row ``k`` is what copy ``k``'s single network computes."""

    def copy_state(self, k: int) -> dict[str, torch.Tensor]:
        """Copy ``k`` as its single network's ``state_dict``."""


def declares_vectorizable(cls: type) -> bool:
    """Whether a model or loss class declares ``vectorizable = True`` (module docstring)."""
    return getattr(cls, "vectorizable", False) is True


def stepping_tricks(tricks: Sequence) -> list[str]:
    """The names of the trick specs in ``tricks`` whose classes do not declare
    ``vectorizable = True`` (they act in the training step, which the engine does not
    call): a trial with any of them runs one copy per trial."""
    from harness.registry import TRICKS

    return [t.name for t in tricks if not declares_vectorizable(TRICKS.get(t.name))]


def auto_devices(net: nn.Module) -> tuple[str, ...]:
    """The device types on which ``vectorize: auto`` stacks the stacked network ``net``."""
    return tuple(getattr(net, "auto_devices", ("cpu", "cuda")))


def stack_networks(modules: Sequence[nn.Module]) -> nn.Module:
    """The stacked network of ``modules`` (one per copy, all of one class), built by their
    class's ``stack_copies``; TypeError for a class that declares none, ValueError naming
    what cannot be stacked."""
    if not modules:
        raise ValueError("no modules to stack")
    cls = type(modules[0])
    stack = getattr(cls, "stack_copies", None)
    if stack is None:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} does not declare how its copies "
                        "stack (a classmethod stack_copies(copies): harness.vector.stacking)")
    others = sorted({type(m).__qualname__ for m in modules if type(m) is not cls})
    if others:
        raise ValueError(f"the modules to stack differ in class: {cls.__qualname__}, "
                         f"{', '.join(others)}")
    return stack(list(modules))


__all__ = ["StackedNetwork", "auto_devices", "declares_vectorizable", "stack_networks",
           "stepping_tricks"]
