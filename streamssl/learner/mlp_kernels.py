"""The MLP heads' compiled loops on the CPU: their answer and the gradients of a step.

A head is two linear layers with a GELU between them (:class:`~streamssl.learner.classifier.
OnlineMLPClassifier`). For the few rows of an event or of a step (a batch's labels and 32
replayed rows) each torch call costs more than its arithmetic, so on the CPU both are one loop
each; a GPU, and answers of many rows, keep torch's kernels, against which the tests hold these.
Products are summed in float32, as torch's are; the GELU and the softmax are taken in float64 and
rounded to float32.

numba has no vectorised ``erf`` or ``exp`` (libm's cost 15 and 9 ns a value here, most of a step
of 45 rows and 64 hidden units), so :func:`gelu` takes the normal distribution from exponentials
computed a whole array at a time (:func:`exp`), in loops the compiler runs several lanes wide.

>>> a = np.array([1.0, -3.0, 0.0], dtype=np.float32)
>>> h, slope = np.empty_like(a), np.empty_like(a)
>>> gelu(a, h, slope)
>>> [round(v, 5) for v in h.tolist()], [round(v, 5) for v in slope.tolist()]  # x Phi(x), Phi(x) + x phi(x)
([0.84134, -0.00405, 0.0], [1.08332, -0.01195, 0.5])
"""

from __future__ import annotations

import math

import numpy as np

from .compiled import compiled, softmax_

SQRT_HALF = math.sqrt(0.5)  # GELU's constants, also of the torch path (classifier._torch_gradients)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_LOG2E, _LN2 = 1.0 / math.log(2.0), math.log(2.0)


@compiled(reassociate=True)
def exp(x: np.ndarray, out: np.ndarray, bits: np.ndarray) -> None:
    """``out = e**x`` in float64, ``x`` taken as -700 below it (e**-700 is 1e-304, nothing in
    float32): x = k ln 2 + r, |r| <= ln 2 / 2, e**r from its Taylor polynomial of degree 9
    (relative error under 2e-10), 2**k from its bits (``bits``: int64 scratch, as long).

    >>> x = np.array([-3.7, 0.0, 2.5, -800.0]); out = np.empty(4)
    >>> exp(x, out, np.empty(4, dtype=np.int64))
    >>> bool(np.allclose(out[:3], np.exp(x[:3]), rtol=1e-9)), bool(out[3] < 1e-300)
    (True, True)
    """
    for i in range(x.size):
        v = max(x[i], -700.0)
        k = math.floor(v * _LOG2E + 0.5)
        r = v - k * _LN2
        out[i] = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (
            1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r / 362880))))))))
        bits[i] = (np.int64(k) + 1023) << 52
    scale = bits.view(np.float64)
    for i in range(x.size):
        out[i] *= scale[i]


@compiled(reassociate=True)
def gelu(a: np.ndarray, h: np.ndarray, slope: np.ndarray) -> None:
    """GELU of a 1-D array ``a``, ``h = a Phi(a)``, and its derivative, ``slope = Phi(a) + a
    phi(a)``. ``Phi`` from the complementary error function's Chebyshev fit (Press et al.,
    Numerical Recipes, 2nd ed., section 6.2: fractional error under 1.2e-7, so ``Phi`` within
    6e-8, float32's rounding), whose exponential is ``phi``'s times that of a polynomial."""
    n = a.size
    t, gauss, tail, bits = np.empty(n), np.empty(n), np.empty(n), np.empty(n, dtype=np.int64)
    for i in range(n):
        z = abs(np.float64(a[i])) * SQRT_HALF
        t[i] = 1.0 / (1.0 + 0.5 * z)
        tail[i] = -z * z
    exp(tail, gauss, bits)  # phi(a) sqrt(2 pi)
    for i in range(n):
        u = t[i]
        tail[i] = -1.26551223 + u * (1.00002368 + u * (0.37409196 + u * (0.09678418 + u * (-0.18628806 + u * (
            0.27886807 + u * (-1.13520398 + u * (1.48851587 + u * (-0.82215223 + u * 0.17087277))))))))
    exp(tail, tail, bits)
    for i in range(n):
        x = np.float64(a[i])
        upper = 0.5 * t[i] * gauss[i] * tail[i]  # 1 - Phi(|a|)
        below = 1.0 if x >= 0.0 else 0.0
        cdf = below + (1.0 - 2.0 * below) * upper
        h[i] = x * cdf
        slope[i] = cdf + x * gauss[i] * INV_SQRT_2PI


@compiled(reassociate=True)
def _hidden(H: np.ndarray, W1: np.ndarray, b1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hidden layer of rows ``H``: GELU of ``H W1' + b1`` and its slope, float32."""
    rows, n_hidden = H.shape[0], W1.shape[0]
    W1t = np.ascontiguousarray(W1.T)  # the inner loop runs along the hidden units, lanes wide
    a = np.empty(rows * n_hidden, dtype=np.float32)
    for r in range(rows):
        at = r * n_hidden
        for j in range(n_hidden):
            a[at + j] = b1[j]
        for c in range(H.shape[1]):
            x = H[r, c]
            for j in range(n_hidden):
                a[at + j] += x * W1t[c, j]
    h, slope = np.empty_like(a), np.empty_like(a)
    gelu(a, h, slope)
    return h.reshape(rows, n_hidden), slope.reshape(rows, n_hidden)


@compiled(reassociate=True)
def _softmax(h: np.ndarray, W2: np.ndarray, b2: np.ndarray, k: int) -> np.ndarray:
    """The softmax of the first ``k`` logits of hidden rows ``h`` (float64)."""
    p = np.empty((h.shape[0], k))
    for r in range(h.shape[0]):
        for o in range(k):
            z = b2[o]
            for j in range(h.shape[1]):
                z += h[r, j] * W2[o, j]
            p[r, o] = z
        softmax_(p[r])
    return p


@compiled
def forward(H: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray,
            n_classes: int) -> np.ndarray:
    """Class probabilities of rows ``H`` over the first ``n_classes`` outputs (float32)."""
    return _softmax(_hidden(H, W1, b1)[0], W2, b2, n_classes).astype(np.float32)


@compiled(reassociate=True)
def gradients(H: np.ndarray, y: np.ndarray, share: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray,
              b2: np.ndarray, k: int, minus: float, spread: float) -> tuple:
    """The gradients of ``W1, b1, W2, b2`` (float32, their shapes) for rows ``H`` (classes
    ``y``, weights ``share`` summing to 1) on the cross-entropy against smoothed targets: the
    softmax of the first ``k`` logits, plus ``minus`` on the label's class, less ``spread`` on
    every class; the output rows beyond ``k`` get none."""
    h, slope = _hidden(H, W1, b1)
    p = _softmax(h, W2, b2, k)
    rows, n_hidden = h.shape
    g = np.empty((rows, k), dtype=np.float32)  # the logits' gradient
    for r in range(rows):
        for o in range(k):
            g[r, o] = (p[r, o] + (minus if o == y[r] else 0.0) - spread) * share[r]
    dW1, db1 = np.zeros_like(W1), np.zeros_like(b1)
    dW2, db2 = np.zeros_like(W2), np.zeros_like(b2)
    for r in range(rows):
        for o in range(k):
            db2[o] += g[r, o]
            for j in range(n_hidden):
                dW2[o, j] += g[r, o] * h[r, j]
        for j in range(n_hidden):
            d = np.float32(0.0)
            for o in range(k):
                d += g[r, o] * W2[o, j]
            d *= slope[r, j]
            db1[j] += d
            for c in range(H.shape[1]):
                dW1[j, c] += d * H[r, c]
    return dW1, db1, dW2, db2
