"""Image classification on CIFAR-10 (or a synthetic stand-in) with optional global magnitude pruning."""

from .train import main

__all__ = ["main"]
