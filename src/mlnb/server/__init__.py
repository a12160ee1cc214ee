"""The Jupyter server extension: the registry's REST API under ``{base_url}mlnb/api/``.

Enabled by ``jupyter-config/jupyter_server_config.d/mlnb.json`` (installed with
the wheel), found through :func:`mlnb._jupyter_server_extension_points`.  The
JupyterLab "Models" sidebar (``labextension/``) is its client.  Routes and
records: ``docs/rest-api.md``.  Importing this package imports nothing of
jupyter_server; loading the extension does.
"""

from __future__ import annotations

from typing import Any

__all__ = ["_load_jupyter_server_extension"]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Add mlnb's handlers to the Jupyter server's web app."""
    from mlnb.server.handlers import setup_handlers

    setup_handlers(serverapp.web_app)
    base = serverapp.web_app.settings.get("base_url", "/")
    serverapp.log.info("mlnb: registry API at %smlnb/api/", base)
