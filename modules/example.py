"""A tiny experiment: fit y = 3x + 1 with gradient descent, in pure Python, in a fraction of a second."""

from __future__ import annotations

import random


def main(exp):
    """Train a one-variable linear model and write its results into `exp`."""
    rng = random.Random(exp.get("seed", 0))
    points = [(x, 3.0 * x + 1.0 + rng.gauss(0.0, exp.noise)) for x in (rng.uniform(-1, 1) for _ in range(exp.samples))]
    w, b = 0.0, 0.0
    lr = exp.optimizer.lr
    momentum = exp.optimizer.momentum
    vw = vb = 0.0
    losses = []
    for _ in range(exp.steps):
        gw = sum(2 * (w * x + b - y) * x for x, y in points) / len(points)
        gb = sum(2 * (w * x + b - y) for x, y in points) / len(points)
        vw = momentum * vw - lr * gw
        vb = momentum * vb - lr * gb
        w, b = w + vw, b + vb
        losses.append(sum((w * x + b - y) ** 2 for x, y in points) / len(points))
    exp.W = round(w, 4)
    exp.B = round(b, 4)
    exp.FINAL_LOSS = losses[-1]
    exp.LOSS_HISTORY = [round(loss, 5) for loss in losses[:: max(1, len(losses) // 10)]]
