"""gan-harness: which GAN recipe trains stably and covers all the modes, and how sure are we?

Public API for plugin authors: :mod:`harness.registry` (``register_model`` & co.) and
the abstract bases in :mod:`harness.models`, :mod:`harness.losses`, :mod:`harness.tricks`,
:mod:`harness.data` and :mod:`harness.metrics`.
"""

__version__ = "0.1.0"
