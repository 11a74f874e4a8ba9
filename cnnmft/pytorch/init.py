r"""In-place initializers for ``torch.nn.Conv1d/2d/3d`` weights.

Each initializer draws a seed from the torch generator (``generator=``, or torch's global RNG, so
``torch.manual_seed`` makes it reproducible), calls the numpy generator of
:mod:`cnnmft.orthogonal` with the weight's shape ``(c_out, c_in, *k)`` (the same layout), and
copies the float64 result into the weight under ``torch.no_grad()``, keeping its dtype and
device. The maths lives once, in numpy.

``weight`` may be a weight tensor or a convolution module; with a module, ``groups != 1`` and
transposed convolutions are rejected (a grouped weight ``(c_out, c_in / groups, *k)`` does not
describe one orthogonal operator, and ``ConvTranspose`` stores ``(c_in, c_out / groups, *k)``).

Scale: ``sigma_w2`` everywhere (see :mod:`cnnmft.conventions` to convert a ``gain``).

References
----------
.. [1] Xiao et al., ICML 2018, arXiv:1806.05393, Algorithms 1 and 2.
"""

from __future__ import annotations

import numpy as np
import torch

from cnnmft import orthogonal as _orth

__all__ = ["delta_orthogonal_", "block_orthogonal_", "tunable_orthogonal_", "gaussian_"]


def _resolve(weight, what):
    if isinstance(weight, torch.nn.Module):
        from torch.nn.modules.conv import _ConvNd

        if not isinstance(weight, _ConvNd):
            raise TypeError(
                f"{what}: expected a convolution weight tensor or a torch.nn.Conv1d/2d/3d "
                f"module, got a {type(weight).__name__}"
            )
        if weight.transposed:
            raise ValueError(
                f"{what}: transposed convolutions are not supported (their weight layout is "
                "(c_in, c_out/groups, *k)); initialise an ordinary ConvNd"
            )
        if weight.groups != 1:
            raise ValueError(
                f"{what}: needs groups == 1, got groups={weight.groups}. A grouped convolution "
                "is groups independent operators; the kernels here make one orthogonal operator "
                "over all channels"
            )
        weight = weight.weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor or a ConvNd module, got {weight!r}")
    if not 3 <= weight.dim() <= 5:
        raise ValueError(
            f"{what}: the weight must have shape (c_out, c_in, *k) with 1 to 3 spatial axes "
            f"(Conv1d/2d/3d); got shape {tuple(weight.shape)}"
        )
    if not (weight.dtype.is_floating_point or weight.dtype.is_complex):
        raise TypeError(f"{what}: the weight must be floating point, got {weight.dtype}")
    return weight


def _seed(generator):
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=device).item())


_NUMPY_DTYPES = (torch.float16, torch.float32, torch.float64)


def _copy(weight, array):
    with torch.no_grad():
        if weight.device.type == "cpu" and weight.dtype in _NUMPY_DTYPES:
            # write through a numpy view of the same memory: one single-threaded cast-and-copy
            # (torch's intra-op threads make small copies very slow on a loaded machine)
            np.copyto(weight.detach().numpy(), array, casting="same_kind")
        else:
            weight.copy_(torch.from_numpy(array).to(dtype=weight.dtype, device=weight.device))
    return weight


def delta_orthogonal_(weight, sigma_w2=1.0, *, generator=None, semi_orthogonal=False):
    r"""Fill a conv weight in place with a Delta-orthogonal kernel (Algorithm 2).

    A Haar orthogonal ``c_out x c_in`` matrix times :math:`\sqrt{\sigma_w^2}` on the centre tap
    ``(k - 1) // 2`` of every axis, zeros elsewhere; see
    :func:`cnnmft.orthogonal.delta_orthogonal`.

    Parameters
    ----------
    weight : torch.Tensor or torch.nn.Conv1d/2d/3d
        Weight of shape ``(c_out, c_in, *k)`` with ``c_in <= c_out`` (or its module).
    sigma_w2 : float, default 1
        Weight variance; every singular value of the operator becomes :math:`\sigma_w`.
    generator : torch.Generator, optional, keyword-only
        Source of randomness (default: torch's global RNG).
    semi_orthogonal : bool, default False, keyword-only
        Allow ``c_in > c_out`` and return a co-isometry (orthonormal rows at every frequency;
        see :func:`cnnmft.orthogonal.delta_orthogonal`).

    Returns
    -------
    weight : torch.Tensor
        The same tensor, filled.

    Raises
    ------
    ValueError
        ``c_in > c_out``, ``groups != 1``, a transposed convolution, a wrong rank.

    Examples
    --------
    >>> conv = torch.nn.Conv2d(16, 32, 3, padding=1, padding_mode="circular")
    >>> w = delta_orthogonal_(conv, sigma_w2=2.0, generator=torch.Generator().manual_seed(0))
    >>> h = w[:, :, 1, 1].double()
    >>> bool(torch.allclose(h.T @ h, 2 * torch.eye(16, dtype=torch.float64), atol=1e-5))
    True
    """
    w = _resolve(weight, "delta_orthogonal_")
    return _copy(
        w,
        _orth.delta_orthogonal(
            tuple(w.shape), sigma_w2, _seed(generator), semi_orthogonal=semi_orthogonal
        ),
    )


def block_orthogonal_(
    weight, sigma_w2=1.0, *, generator=None, rank="random", semi_orthogonal=False
):
    r"""Fill a conv weight in place with a block-orthogonal kernel (Algorithm 1).

    Exact isometry times :math:`\sigma_w` under **circular** padding (use
    ``padding_mode="circular"``), binomial tap-energy profile; see
    :func:`cnnmft.orthogonal.block_orthogonal`. Arguments as :func:`delta_orthogonal_`, plus
    ``rank`` ("random" or "fixed") and ``semi_orthogonal``.

    Examples
    --------
    >>> conv = torch.nn.Conv1d(8, 8, 4, bias=False)
    >>> _ = block_orthogonal_(conv.weight, generator=torch.Generator().manual_seed(0))
    >>> round(float((conv.weight.detach().double() ** 2).sum()), 4)  # Parseval: sigma_w2 * c_in
    8.0
    """
    w = _resolve(weight, "block_orthogonal_")
    return _copy(
        w,
        _orth.block_orthogonal(
            tuple(w.shape), sigma_w2, _seed(generator), rank=rank, semi_orthogonal=semi_orthogonal
        ),
    )


def tunable_orthogonal_(
    weight, sigma_w2=1.0, t=0.25, *, generator=None, rank="random", semi_orthogonal=False
):
    r"""Fill a conv weight in place with a kernel of the tunable orthogonal family.

    ``t = 0`` is Delta-orthogonal, ``t = 1/2`` the binomial profile of Algorithm 1; every member
    is an exact isometry under circular padding. See
    :func:`cnnmft.orthogonal.tunable_orthogonal`; other arguments as :func:`delta_orthogonal_`.
    """
    w = _resolve(weight, "tunable_orthogonal_")
    return _copy(
        w,
        _orth.tunable_orthogonal(
            tuple(w.shape),
            sigma_w2,
            t,
            _seed(generator),
            rank=rank,
            semi_orthogonal=semi_orthogonal,
        ),
    )


def gaussian_(weight, sigma_w2=1.0, v="uniform", *, t=None, generator=None):
    r"""Fill a conv weight in place with i.i.d. :math:`N(0, \sigma_w^2 v_\beta / c_{in})` entries.

    ``v`` is a profile name ("uniform", "delta", "binomial", "tunable" with ``t=``) or an array
    of the kernel's spatial shape summing to 1; see :func:`cnnmft.orthogonal.gaussian_kernel`.
    Works for any ``c_in``, ``c_out``.

    Examples
    --------
    >>> w = gaussian_(torch.empty(64, 64, 3), 2.0, generator=torch.Generator().manual_seed(0))
    >>> abs(float(w.var()) * 64 * 3 / 2.0 - 1) < 0.05
    True
    """
    w = _resolve(weight, "gaussian_")
    return _copy(w, _orth.gaussian_kernel(tuple(w.shape), sigma_w2, v, _seed(generator), t=t))
