"""A probe: the top class's confidence recalibrated after the temperature, against the recorded suite.

    python benchmarks/calibration_replay.py --record DIR        # once (~8 minutes)
    python benchmarks/calibration_toplabel.py DIR default,top8,top32,bias8,bias32

ECE scores the top class's confidence alone, which one temperature bends for all classes at
once. ``TopLabel`` keeps the default temperature (with its trend) and then maps the top
class's confidence through sigmoid(a + b * logit(p)), fitted on the calibrator's window by
Newton's method with a Gaussian prior at (a, b) = (0, 1) worth ``strength`` labels (``bias``:
b held at 1). The other classes are rescaled to sum to 1, and the top class stays the top.
Result in ``benchmarks/results/calibration/top-label-2026-12-05.md``: no gain, not adopted.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibration_replay as cr  # noqa: E402

from streamssl.learner.calibration import TemperatureCalibrator, _softmax  # noqa: E402

class TopLabel(TemperatureCalibrator):
    """Temperature (with trend), then the top class's confidence through a logistic map
    sigmoid(a + b * logit(p)) fitted on the window, prior a~0, b~1 worth `strength` labels."""
    def __init__(self, strength: float = 8.0, slope: bool = True, **kw) -> None:
        super().__init__(floor=None, **kw)  # the temperature alone, as probed (2026-12-05)
        self.strength, self.slope = strength, slope
        self.ab = (0.0, 1.0)

    def _fit(self):
        t, share = super()._fit()
        L, y = self._window()
        P = _softmax(L / t)
        c = np.clip(P.max(1), 1e-6, 1 - 1e-6)
        ok = (P.argmax(1) == y).astype(float)
        x = np.log(c / (1 - c))
        theta = np.array(self.ab if self.ab else (0.0, 1.0))
        mu = np.array([0.0, 1.0])
        s = self.strength
        for _ in range(30):
            z = theta[0] + theta[1] * x
            p = 1 / (1 + np.exp(-z))
            g = np.array([np.sum(p - ok), np.sum((p - ok) * x)]) + s * (theta - mu)
            w = p * (1 - p)
            H = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]]) + s * np.eye(2)
            if not self.slope:
                g[1] = 0; H[0, 1] = H[1, 0] = 0; H[1, 1] = 1
            step = np.linalg.solve(H, g)
            theta = theta - step
            if np.abs(step).max() < 1e-9:
                break
        self.ab = (float(theta[0]), float(theta[1]))
        return t, share

    def apply(self, proba):
        out = super().apply(proba)
        if self.fitted_at == 0 or out.shape[1] < 2:
            return out
        a, b = self.ab
        top = out.argmax(1)
        n = np.arange(len(out))
        p = np.clip(out[n, top], 1e-9, 1 - 1e-9)
        q = 1 / (1 + np.exp(-(a + b * np.log(p / (1 - p)))))
        rest = out.copy(); rest[n, top] = 0
        p2 = rest.max(1)
        q = np.maximum(q, p2 / np.maximum(1 - p + p2, 1e-12) + 1e-9)  # the top stays the top
        q = np.minimum(q, 1 - 1e-9)
        scale = (1 - q) / np.maximum(1 - p, 1e-12)
        res = rest * scale[:, None]
        res[n, top] = q
        return res

cr.VARIANTS.update({
    "top8": lambda: TopLabel(8.0),
    "top32": lambda: TopLabel(32.0),
    "bias8": lambda: TopLabel(8.0, slope=False),
    "bias32": lambda: TopLabel(32.0, slope=False),
})
if __name__ == "__main__":
    cr.report(Path(sys.argv[1]), sys.argv[2].split(","))
