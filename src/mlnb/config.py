"""Settings: environment variables beat ``$MLNB_HOME/config.toml``, which beats defaults.

=================  ==========================================  =============================
variable           meaning                                     default
=================  ==========================================  =============================
``MLNB_HOME``      folder holding the registry, socket, blobs  ``~/.mlnb``
``MLNB_REGISTRY``  registry database file, or ``:memory:``     ``$MLNB_HOME/registry.duckdb``
``MLNB_STORAGE``   fsspec URL of the artifact store            ``$MLNB_HOME/artifacts``
``MLNB_USER``      who is written to the audit log             the OS user
``MLNB_IDLE``      seconds a registry server waits idle        ``600``
=================  ==========================================  =============================

``config.toml`` uses the same keys in lower case without the prefix
(``storage = "s3://bucket/models"``).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

from mlnb.errors import InvalidArgument

__all__ = ["Settings", "settings"]

_KEYS = ("registry", "storage", "user", "idle")


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one registry."""

    home: Path
    registry: str
    storage: str
    user: str
    idle: float


def _read_file(home: Path) -> dict[str, object]:
    path = home / "config.toml"
    if not path.is_file():
        return {}
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InvalidArgument(f"cannot read {path}: {err}; fix or remove the file") from err
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise InvalidArgument(
            f"unknown setting(s) {', '.join(unknown)} in {path}; known: {', '.join(_KEYS)}"
        )
    return data


def _default_user() -> str:
    for var in ("JUPYTERHUB_USER",):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def settings(
    home: str | os.PathLike[str] | None = None,
    registry: str | os.PathLike[str] | None = None,
    storage: str | os.PathLike[str] | None = None,
    user: str | None = None,
) -> Settings:
    """Resolve settings: arguments, then environment, then ``config.toml``, then defaults."""
    env = os.environ
    home_path = Path(home or env.get("MLNB_HOME") or Path.home() / ".mlnb").expanduser()
    file = _read_file(home_path)

    def pick(key: str, given: object) -> object:
        if given is not None:
            return given
        return env.get(f"MLNB_{key.upper()}") or file.get(key)

    reg = pick("registry", registry) or home_path / "registry.duckdb"
    reg_str = str(reg)
    if reg_str != ":memory:" and not reg_str.startswith(("http://", "https://")):
        reg_str = str(Path(reg_str).expanduser().absolute())
    store = str(pick("storage", storage) or home_path / "artifacts")
    if "://" not in store:
        store = str(Path(store).expanduser().absolute())
    idle_raw = pick("idle", None) or 600
    try:
        idle = float(idle_raw)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise InvalidArgument(f"MLNB_IDLE must be a number of seconds, not {idle_raw!r}") from err
    return Settings(
        home=home_path.absolute(),
        registry=reg_str,
        storage=store,
        user=str(pick("user", user) or _default_user()),
        idle=idle,
    )
