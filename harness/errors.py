"""Errors a user can fix. The CLI turns each into one line on stderr and exit code 2."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every user-facing error: its message says what is wrong and what is allowed."""


class ConfigError(HarnessError):
    """A study file, trial config or command-line value is invalid."""


class RegistryError(HarnessError):
    """A registration was refused, or a lookup named nothing registered."""


class TrackingError(HarnessError):
    """The MLflow tracking store cannot be opened or written."""


class ClusterError(HarnessError):
    """The Ray cluster named by ``--address`` cannot be reached."""


class DeviceError(HarnessError):
    """A trial asks for a device this process cannot use (``cuda`` with no usable GPU)."""
