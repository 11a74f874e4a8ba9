"""PyTorch backend of cnnmft (optional extra: ``pip install cnnmft[torch]``).

Importing this package requires torch; ``import cnnmft`` never imports it. The initializers in
:mod:`cnnmft.pytorch.init` call the numpy generators of :mod:`cnnmft.orthogonal` and copy the
result into the weight in place, so the maths exists once.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "cnnmft.pytorch needs PyTorch, which is not installed. Install the optional extra with "
        "`pip install cnnmft[torch]` (or install torch yourself, see https://pytorch.org)."
    ) from exc

from cnnmft.pytorch.init import (  # noqa: E402
    block_orthogonal_,
    delta_orthogonal_,
    gaussian_,
    tunable_orthogonal_,
)

__all__ = [
    "delta_orthogonal_",
    "block_orthogonal_",
    "tunable_orthogonal_",
    "gaussian_",
]

# --- models, data and training (issue 7) -------------------------------------------------------
from cnnmft.pytorch.data import Dataset, load_dataset  # noqa: E402
from cnnmft.pytorch.models import DeepConvBlock, VanillaCNN, critical_variances  # noqa: E402
from cnnmft.pytorch.train import TrainConfig, TrainResult, plot_training, train  # noqa: E402

__all__ += [
    "VanillaCNN",
    "DeepConvBlock",
    "critical_variances",
    "Dataset",
    "load_dataset",
    "TrainConfig",
    "TrainResult",
    "train",
    "plot_training",
]

# --- ensembles and the theory-against-training experiments (dask only when a sweep runs) -----
from cnnmft.pytorch.ensemble import EnsembleCNN, EnsembleSGD, train_ensemble  # noqa: E402
from cnnmft.pytorch.experiments import (  # noqa: E402
    TrainabilitySweep,
    plot_trainability,
    trainability_sweep,
)
from cnnmft.pytorch.profiles import ModewiseStudy, modewise_study, plot_modewise  # noqa: E402

__all__ += [
    "EnsembleCNN",
    "EnsembleSGD",
    "train_ensemble",
    "TrainabilitySweep",
    "trainability_sweep",
    "plot_trainability",
    "ModewiseStudy",
    "modewise_study",
    "plot_modewise",
]
