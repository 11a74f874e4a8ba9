"""In-place initializers for torch convolution weights (placeholder, being written)."""

from __future__ import annotations

__all__ = ["delta_orthogonal_", "block_orthogonal_", "tunable_orthogonal_", "gaussian_"]


def delta_orthogonal_(weight, sigma_w2=1.0, generator=None):  # pragma: no cover - placeholder
    raise NotImplementedError


def block_orthogonal_(weight, sigma_w2=1.0, generator=None):  # pragma: no cover - placeholder
    raise NotImplementedError


def tunable_orthogonal_(weight, sigma_w2=1.0, t=0.5, generator=None):  # pragma: no cover
    raise NotImplementedError


def gaussian_(weight, sigma_w2=1.0, v="uniform", generator=None):  # pragma: no cover
    raise NotImplementedError
