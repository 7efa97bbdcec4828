"""Adversarial training's two choices (Miyato et al. 2017): how far to push a text's embedded tokens, and which
rows of a batch take the pushed pass. `steps.train_step` runs the passes."""

from __future__ import annotations

import torch


def adversarial_delta(grad: torch.Tensor, embedded: torch.Tensor, size: float) -> torch.Tensor:
    """The perturbation of each text's embedded tokens [B, T, E] that raises its loss fastest to first order.

    Miyato et al. (2017), "Adversarial training methods for semi-supervised text classification": the loss
    gradient, L2-normalised over the whole text. Its norm is `size` times the norm of the text's embedded
    tokens, so `size` is relative and means the same whatever the embedding's scale.
    """
    per_text = lambda t: t.float().flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None]  # noqa: E731
    return (size * per_text(embedded) / per_text(grad) * grad.float()).detach()


def adversarial_rows(lengths: torch.Tensor, fraction: float) -> torch.Tensor | None:
    """Which rows of a batch take the adversarial pass: a random `fraction` of them (at least one), in batch
    order (a longest-first batch stays so); None for all. Drawn from torch's CPU generator, which checkpoints
    save, so a resumed run draws the same rows."""
    n = len(lengths)
    k = max(1, round(fraction * n))
    return None if k >= n else torch.randperm(n)[:k].sort().values
