"""Online classifier, pseudo-labelling policy and the streaming learner that composes them."""

from .stream_learner import StreamLearner

__all__ = ["StreamLearner"]
