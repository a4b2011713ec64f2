"""streamssl: a long-running learner for drifting, label-scarce event streams."""

__version__ = "0.1.0"
