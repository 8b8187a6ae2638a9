"""The vectorized engine: N copies of one trial trained as one stacked model.

* :mod:`harness.vector.stacking`: what plugins declare (networks' ``stack_copies``, models'
  and losses' ``vectorizable``) and :func:`~harness.vector.stacking.stack_networks`;
* :mod:`harness.vector.linear`, :mod:`harness.vector.conv`: the stackers network classes
  build on (batched products; grouped convolutions);
* :mod:`harness.vector.adam`: :class:`~harness.vector.adam.StackedAdam`, one Adam per copy;
* :mod:`harness.vector.engine`: :class:`~harness.vector.engine.VectorizedGAN`, the training
  step of every copy at once, bit-equal to single trials on the CPU;
* :mod:`harness.vector.trial`: :class:`~harness.vector.trial.VectorTrainer`, the N-copy
  game the trial loop (:class:`harness.loop.CopiesLoop`) trains, and which pairs can be
  vectorized;
* :mod:`harness.vector.plan`: which trials of a study run vectorized (study key
  ``vectorize``).

Imports nothing itself, so that a plugin importing a stacker loads only that module.
"""
