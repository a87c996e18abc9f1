"""Global magnitude pruning with persistent masks."""

from __future__ import annotations

import torch
from torch import nn


def prunable(model: nn.Module) -> dict[str, torch.nn.Parameter]:
    """The weights of every convolution and linear layer (biases and batch norm are not pruned)."""
    return {f"{name}.weight" if name else "weight": module.weight for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear))}


def magnitude_masks(model: nn.Module, sparsity: float, previous: dict[str, torch.Tensor] | None = None
                    ) -> dict[str, torch.Tensor]:
    """Masks keeping the largest-magnitude weights across all prunable layers, so `sparsity` of them are zero.

    Weights already pruned (by `previous`) have magnitude zero and stay pruned.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), not {sparsity}")
    weights = prunable(model)
    previous = previous or {}
    scores = torch.cat([(w.detach() * previous.get(n, 1)).abs().flatten().float().cpu() for n, w in weights.items()])
    keep = scores.numel() - round(sparsity * scores.numel())
    flat = torch.zeros_like(scores)
    flat[torch.topk(scores, keep, sorted=False).indices] = 1.0
    masks, offset = {}, 0
    for name, weight in weights.items():
        size = weight.numel()
        masks[name] = flat[offset:offset + size].view_as(weight).to(weight.device)
        offset += size
    return masks


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights (after every optimiser step, so they stay zero through training)."""
    weights = prunable(model)
    with torch.no_grad():
        for name, mask in masks.items():
            weights[name].mul_(mask.to(weights[name].device, weights[name].dtype))


def density(model: nn.Module) -> float:
    """The fraction of prunable weights that are not zero."""
    weights = list(prunable(model).values())
    total = sum(w.numel() for w in weights)
    return sum(int(torch.count_nonzero(w)) for w in weights) / total
