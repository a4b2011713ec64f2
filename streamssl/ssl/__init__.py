"""Self-supervised parts: losses, augmentations, encoder and heads, momentum targets, replay."""

OBJECTIVE_NAMES = ("denoising", "masked", "infonce", "byol", "simsiam", "vicreg", "jepa", "dino")
"""The objectives ``--objective`` and ``learner.objective`` accept (importable without torch)."""

DEFAULT_OBJECTIVE = "infonce"
"""The objective used when none is named: best mean accuracy in benchmarks/OBJECTIVES.md."""
