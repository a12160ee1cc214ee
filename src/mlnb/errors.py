"""Every failure mlnb shows a user is an :class:`MlnbError`.

The subclasses are grouped by what the user has to do next, not by where the
failure happened::

    MlnbError
    ├── InvalidName        fix the name or reference you typed
    ├── InvalidArgument    fix an argument value (metric, path, SQL, option)
    ├── NotFound           the model, version, alias or file does not exist
    ├── Conflict           the registry's state forbids it (retired, taken, ...)
    │   └── HoldExpired    an upload lost its protection from gc: upload again
    ├── IntegrityError     stored bytes do not match their hash: repair storage
    ├── UnsafeArchive      an archive tries to escape its target or is too big
    ├── UntrustedObject    loading would unpickle: pass ``trust=True`` if you trust it
    ├── MissingDependency  an optional extra is not installed: ``pip install "mlnb[x]"``
    └── RegistryUnavailable  the registry server cannot be reached or started

Messages say what failed, the offending value, and the next step.  Callers
catch a class, never compare message strings.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "HoldExpired",
    "IntegrityError",
    "InvalidArgument",
    "InvalidName",
    "MissingDependency",
    "MlnbError",
    "NotFound",
    "RegistryUnavailable",
    "UnsafeArchive",
    "UntrustedObject",
]


class MlnbError(Exception):
    """Base class of every error mlnb raises on purpose."""


class InvalidName(MlnbError, ValueError):
    """A model name, alias or reference breaks the naming rules."""


class InvalidArgument(MlnbError, ValueError):
    """An argument has a value mlnb cannot accept."""


class NotFound(MlnbError, LookupError):
    """A model, version, alias, file or blob does not exist."""


class Conflict(MlnbError):
    """The registry's current state does not allow the operation."""


class HoldExpired(Conflict):
    """A registration's uploaded blobs are no longer held against ``gc``.

    The client handles it by holding and, where needed, uploading them again.
    """


class IntegrityError(MlnbError):
    """Stored bytes do not match the hash they were stored under."""


class UnsafeArchive(MlnbError):
    """An archive holds a member that could write outside its target, or is too big."""


class UntrustedObject(MlnbError):
    """Loading the artifact would unpickle data the caller has not trusted."""


class MissingDependency(MlnbError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        why = f" to {purpose}" if purpose else ""
        super().__init__(
            f"{package} is needed{why} but is not installed; "
            f'run: pip install "mlnb[{extra}]"'
        )
        self.package = package
        self.extra = extra


class RegistryUnavailable(MlnbError):
    """The registry server could not be reached or started."""


def from_wire(name: str, message: str) -> MlnbError:
    """Rebuild the error a registry server reported as ``(class name, message)``."""
    cls = globals().get(name)
    if not (isinstance(cls, type) and issubclass(cls, MlnbError)):
        cls = MlnbError
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    return err
