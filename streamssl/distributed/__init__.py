"""Replicas of one consumer group keeping one model, over torch.distributed (see :mod:`.rounds`)."""
