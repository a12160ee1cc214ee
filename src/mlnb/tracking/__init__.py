"""Experiment tracking: publish a training run to MLflow, W&B or another tracker.

``mlnb.train(..., track=["mlflow", "wandb"])`` builds one publisher per tracker
with :func:`make_publishers` before the first step, and the loop sends each of
them the run's events.  A :class:`Publisher` subclass is all a new tracker
needs (see :mod:`mlnb.tracking.base` for what a run becomes in a tracker, and
:mod:`mlnb.tracking.trackers` for plugging one in by name).

Importing this package imports neither mlflow nor wandb: each publisher imports
its package when it is built (``tests/tracking/test_trackers.py`` guards it).
"""

from __future__ import annotations

from mlnb.tracking.base import Publisher
from mlnb.tracking.mlflow_publisher import MLflowPublisher
from mlnb.tracking.trackers import ENTRY_POINT_GROUP, TRACKERS, available_trackers, make_publishers
from mlnb.tracking.wandb_publisher import WandbPublisher

__all__ = [
    "ENTRY_POINT_GROUP",
    "MLflowPublisher",
    "Publisher",
    "TRACKERS",
    "WandbPublisher",
    "available_trackers",
    "make_publishers",
]
