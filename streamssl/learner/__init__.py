"""Online classifier, pseudo-labelling policy and the streaming learner that composes them."""

from .stream_learner import StreamLearner, build_learner

__all__ = ["StreamLearner", "build_learner"]
