"""Metric definitions on an injected registry."""

from .registry import LearnerMetrics

__all__ = ["LearnerMetrics"]
