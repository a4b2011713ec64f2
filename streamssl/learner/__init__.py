"""Online classifier, pseudo-labelling policy and the streaming learner that composes them.

``StreamLearner`` and ``build_learner`` are imported on first use, so that the CLI and the
daemon's config read :mod:`streamssl.learner.switches` without importing torch.
"""

from typing import Any

__all__ = ["PARTS", "StreamLearner", "build_learner", "check_parts", "part_with"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import stream_learner

        return getattr(stream_learner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
