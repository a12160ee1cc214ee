"""Fixtures for the tracking tests: a hand-built run's events, tracker environments."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tracking.runs import Scenario


@pytest.fixture
def model():
    """A tiny torch model with fixed weights."""
    torch = pytest.importorskip("torch")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(),
                                   torch.nn.Linear(16, 2))


@pytest.fixture
def scenario(model):
    """A fresh run's events: two epochs, four logged losses, finished."""
    return Scenario(name="blobs", run_id=f"blobs-{uuid.uuid4().hex[:8]}", model=model).build()


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory) -> Path:
    """One MLNB_HOME per test file: MLflow's SQLite store is created (migrated) once."""
    return tmp_path_factory.mktemp("mlflow-home")


@pytest.fixture
def mlflow_env(mlflow_home, tmp_path, monkeypatch) -> Path:
    """MLFLOW_TRACKING_URI unset, so the default store under MLNB_HOME is used; cwd is tmp."""
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLNB_HOME", str(mlflow_home))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return mlflow_home


@pytest.fixture
def wandb_env(tmp_path, monkeypatch) -> Path:
    """W&B offline and silent, every folder it writes (runs, staging, cache) under tmp."""
    pytest.importorskip("wandb")
    root = tmp_path / "wandb-env"
    for var, sub in (("WANDB_DIR", "dir"), ("WANDB_DATA_DIR", "data"),
                     ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"),
                     ("WANDB_ARTIFACT_DIR", "artifacts")):
        (root / sub).mkdir(parents=True)
        monkeypatch.setenv(var, str(root / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return root / "dir"
