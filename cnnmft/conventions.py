r"""Convert between cnnmft's ``sigma_w2`` and the ``gain``/``scale`` of other frameworks.

cnnmft has one weight-scale parameter, the variance :math:`\sigma_w^2` of the mean-field theory:

* an orthogonal kernel (Delta-orthogonal, block-orthogonal) is an isometry multiplied by
  :math:`\sigma_w = \sqrt{\sigma_w^2}`: every singular value of the convolution operator is
  :math:`\sigma_w`;
* a Gaussian kernel has entries :math:`N(0, \sigma_w^2 v_\beta / c_{in})`; with the uniform
  profile that is a standard deviation of :math:`\sigma_w / \sqrt{\text{fan\_in}}`,
  ``fan_in = c_in * prod(k)``.

Other code multiplies the same orthonormal matrix by different functions of its ``gain``, and the
meaning has changed between versions (TF 1.13; brain-research/mean-field-cnns PR #2). An
off-by-a-square-root silently moves a network off the critical line. The table (also
:func:`conventions_table`):

==============  ================================================  ==========  ======================
convention      where                                             parameter   ``sigma_w2`` equals
==============  ================================================  ==========  ======================
``tf<=1.12``    TF <= 1.12 ``ConvolutionDeltaOrthogonal(gain)``   gain        ``gain``
                (multiplies by ``sqrt(gain)``)
``tf>=1.13``    TF >= 1.13 ``ConvolutionDeltaOrthogonal`` and     gain        ``gain**2``
                ``ConvolutionOrthogonal1D/2D/3D``
``jax``         ``jax.nn.initializers.delta_orthogonal(scale)``,  scale       ``scale**2``
                Flax ``linen``/``nnx`` re-exports
``torch``       ``torch.nn.init.orthogonal_(gain)``;              gain        ``gain**2``
                ports that multiply by gain (JiJingYu)
``torch-sqrt``  yl-1993/ConvDeltaOrthogonal-Init                  gain        ``gain``
                ``conv_delta_orthogonal_`` (``sqrt(gain)``)
``dks``         DKS ``scaled_uniform_orthogonal(gain)``:          gain        ``gain**2 *
                multiplies by ``gain * max(sqrt(out/in), 1)``                 max(c_out/c_in, 1)``
``nt``          neural-tangents ``stax.Conv(W_std=...)``          W_std       ``W_std**2``
                (Gaussian, std ``W_std / sqrt(fan_in)``)
``std``         a Gaussian kernel's per-entry standard            std         ``std**2 * fan_in``
                deviation (uniform profile), e.g. ``normal_``
==============  ================================================  ==========  ======================

References
----------
.. [1] Xiao et al., ICML 2018, arXiv:1806.05393.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from cnnmft._validation import as_float_array, as_int

__all__ = [
    "Convention",
    "CONVENTIONS",
    "to_sigma_w2",
    "from_sigma_w2",
    "available_conventions",
    "conventions_table",
]


@dataclass(frozen=True)
class Convention:
    """One framework's meaning of its weight-scale parameter.

    Attributes
    ----------
    name : str
        Key used by :func:`to_sigma_w2` / :func:`from_sigma_w2`.
    where : str
        Framework and function that use it.
    parameter : str
        The framework's argument name.
    multiplies_by : str
        What the framework multiplies its unit-scale kernel by.
    sigma_w2 : str
        ``sigma_w2`` as a function of the parameter.
    needs : tuple of str
        Extra keyword arguments the conversion needs (``c_in``, ``c_out``, ``kernel_size``).
    """

    name: str
    where: str
    parameter: str
    multiplies_by: str
    sigma_w2: str
    needs: tuple = ()


CONVENTIONS = {
    c.name: c
    for c in [
        Convention(
            "tf<=1.12",
            "TensorFlow <= 1.12 ConvolutionDeltaOrthogonal",
            "gain",
            "sqrt(gain)",
            "gain",
        ),
        Convention(
            "tf>=1.13",
            "TensorFlow >= 1.13 ConvolutionDeltaOrthogonal, ConvolutionOrthogonal1D/2D/3D",
            "gain",
            "gain",
            "gain**2",
        ),
        Convention(
            "jax",
            "jax.nn.initializers.delta_orthogonal, flax.linen/nnx.initializers",
            "scale",
            "scale",
            "scale**2",
        ),
        Convention(
            "torch",
            "torch.nn.init.orthogonal_; ports that multiply by gain "
            "(JiJingYu/delta_orthogonal_init_pytorch)",
            "gain",
            "gain",
            "gain**2",
        ),
        Convention(
            "torch-sqrt",
            "yl-1993/ConvDeltaOrthogonal-Init conv_delta_orthogonal_",
            "gain",
            "sqrt(gain)",
            "gain",
        ),
        Convention(
            "dks",
            "deepmind/dks scaled_uniform_orthogonal (true fan-in/out)",
            "gain",
            "gain * max(sqrt(c_out/c_in), 1)",
            "gain**2 * max(c_out/c_in, 1)",
            ("c_in", "c_out"),
        ),
        Convention(
            "nt",
            "neural-tangents stax.Conv / Dense (Gaussian)",
            "W_std",
            "W_std / sqrt(fan_in) (entry std)",
            "W_std**2",
        ),
        Convention(
            "std",
            "Gaussian entry standard deviation, uniform profile (e.g. torch normal_(std=...))",
            "std",
            "std (entry std)",
            "std**2 * c_in * prod(kernel_size)",
            ("c_in", "kernel_size"),
        ),
    ]
}


def available_conventions() -> list[str]:
    """Return the names of the known conventions (keys of :data:`CONVENTIONS`).

    Examples
    --------
    >>> available_conventions()[:3]
    ['tf<=1.12', 'tf>=1.13', 'jax']
    """
    return list(CONVENTIONS)


def _factor(conv, c_in, c_out, kernel_size):
    """Return ``(power, factor)`` with ``sigma_w2 = factor * value**power``."""
    if conv.name in ("tf<=1.12", "torch-sqrt"):
        return 1, 1.0
    if conv.name in ("tf>=1.13", "jax", "torch", "nt"):
        return 2, 1.0
    if conv.name == "dks":
        c_in = as_int(c_in, "c_in", low=1)
        c_out = as_int(c_out, "c_out", low=1)
        return 2, max(c_out / c_in, 1.0)
    # std
    c_in = as_int(c_in, "c_in", low=1)
    if isinstance(kernel_size, (int, np.integer)):
        ks = (kernel_size,)
    else:
        ks = tuple(kernel_size)
    fan = c_in * int(np.prod([as_int(k, "kernel_size", low=1) for k in ks]))
    return 2, float(fan)


def _get(convention, c_in, c_out, kernel_size):
    if convention not in CONVENTIONS:
        raise ValueError(
            f"`convention` must be one of {available_conventions()}; got {convention!r}"
        )
    conv = CONVENTIONS[convention]
    given = {"c_in": c_in, "c_out": c_out, "kernel_size": kernel_size}
    missing = [n for n in conv.needs if given[n] is None]
    if missing:
        raise ValueError(
            f"convention {convention!r} ({conv.sigma_w2}) needs "
            + ", ".join(f"`{m}`" for m in missing)
        )
    return conv


def to_sigma_w2(
    value: ArrayLike,
    convention: str,
    *,
    c_in: int | None = None,
    c_out: int | None = None,
    kernel_size: int | tuple[int, ...] | None = None,
) -> float | np.ndarray:
    r"""Return the ``sigma_w2`` equivalent to another framework's ``gain``/``scale``.

    Parameters
    ----------
    value : float or array_like
        The framework's parameter (``gain``, ``scale``, ``W_std`` or ``std``), ``>= 0``.
    convention : str
        One of :func:`available_conventions` (see the module table).
    c_in, c_out : int, optional, keyword-only
        Input and output channels (true fan-in/fan-out of the convolution; needed by "dks"
        and, ``c_in``, by "std").
    kernel_size : int or tuple of int, optional, keyword-only
        Spatial kernel size (needed by "std").

    Returns
    -------
    sigma_w2 : float or ndarray
        Same shape as `value`.

    Raises
    ------
    ValueError
        Unknown convention, a negative value, or a missing ``c_in``/``c_out``/``kernel_size``.

    Examples
    --------
    >>> to_sigma_w2(1.2, "tf>=1.13")
    1.44
    >>> to_sigma_w2(1.44, "tf<=1.12")
    1.44
    >>> to_sigma_w2(1.0, "dks", c_in=64, c_out=256)
    4.0
    """
    conv = _get(convention, c_in, c_out, kernel_size)
    val = as_float_array(value, conv.parameter, low=0.0)
    power, factor = _factor(conv, c_in, c_out, kernel_size)
    out = factor * val**power
    return float(out) if out.ndim == 0 else out


def from_sigma_w2(
    sigma_w2: ArrayLike,
    convention: str,
    *,
    c_in: int | None = None,
    c_out: int | None = None,
    kernel_size: int | tuple[int, ...] | None = None,
) -> float | np.ndarray:
    r"""Return the ``gain``/``scale`` another framework needs to realise ``sigma_w2``.

    The inverse of :func:`to_sigma_w2` (same arguments).

    Examples
    --------
    >>> from_sigma_w2(2.25, "jax")
    1.5
    >>> round(from_sigma_w2(2.0, "std", c_in=32, kernel_size=(3, 3)), 6)  # sqrt(2 / (32 * 9))
    0.083333
    """
    conv = _get(convention, c_in, c_out, kernel_size)
    s2 = as_float_array(sigma_w2, "sigma_w2", low=0.0)
    power, factor = _factor(conv, c_in, c_out, kernel_size)
    out = (s2 / factor) ** (1.0 / power)
    return float(out) if out.ndim == 0 else out


def conventions_table() -> str:
    """Return the conventions as a Markdown table (used by the docs and the CLI).

    Examples
    --------
    >>> print(conventions_table().splitlines()[0])
    | convention | where | parameter | multiplies the unit kernel by | sigma_w2 |
    """
    lines = [
        "| convention | where | parameter | multiplies the unit kernel by | sigma_w2 |",
        "|---|---|---|---|---|",
    ]
    for c in CONVENTIONS.values():
        lines.append(
            f"| `{c.name}` | {c.where} | `{c.parameter}` | `{c.multiplies_by}` | `{c.sigma_w2}` |"
        )
    return "\n".join(lines)
