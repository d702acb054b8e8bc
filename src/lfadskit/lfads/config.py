"""LFADS settings: one flat, frozen, validated dataclass.

Sizes of the data (input neurons, output neurons, time steps) are not settings: they come
from the data at fit time. Everything else is here with one documented default.

Examples
--------
>>> from lfadskit.lfads.config import LFADSConfig
>>> cfg = LFADSConfig(gen_dim=64, max_epochs=10)
>>> LFADSConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["LFADSConfig", "SEARCHABLE", "SELECTION_METRICS"]

#: Hyperparameters that may differ between members of a population (length-K values).
SEARCHABLE = (
    "lr",
    "dropout",
    "cd_rate",
    "kl_ic_scale",
    "kl_co_scale",
    "l2_gen_scale",
    "l2_con_scale",
)

SELECTION_METRICS = ("valid_nll", "sv_nll")


@dataclass(frozen=True)
class LFADSConfig:
    """Architecture, regularization and training settings of LFADS.

    Defaults are chosen for small datasets (tens to hundreds of trials): coordinated
    dropout at 0.5, a strong L2 penalty on the generator with a weak KL on the inferred
    inputs (the combination that population based training converged to on MC_Maze_Small),
    small batches (more updates per epoch when there are few trials) and shorter KL/L2
    ramps than the original LFADS (80 epochs). They were chosen with
    ``benchmarks/default_sweep.py`` (candidates trained side by side, scored on held-out
    trials of MC_Maze_Small and simulated Lorenz data; see ``benchmarks/RESULTS.md``).

    Parameters
    ----------
    ic_enc_dim : int
        Units per direction of the bidirectional initial-condition encoder GRU.
    ci_enc_dim : int
        Units per direction of the bidirectional controller-input encoder GRU.
    ic_dim : int
        Size of the initial condition g0 (its posterior is Gaussian).
    con_dim : int
        Units of the controller GRU.
    co_dim : int
        Size of the inferred input u_t; 0 turns the controller and its encoder off.
    gen_dim : int
        Units of the generator GRU.
    fac_dim : int
        Number of latent factors.
    ci_lag : int
        Bins by which the controller-input encoder's forward half is delayed (backward
        half advanced), so the controller cannot read the spike it is predicting.
    cell_clip : float
        GRU hidden states are clipped to [-cell_clip, cell_clip].
    ic_prior_var : float
        Variance of the initial-condition prior N(mu_p, ic_prior_var) (mean is learned).
    ic_post_var_min : float
        Floor added to the posterior variances (initial condition and inferred inputs).
    co_prior_tau : float
        Initial time constant (bins) of the AR(1) prior on the inferred inputs.
    co_prior_var : float
        Initial process variance of the AR(1) prior on the inferred inputs.
    dropout : float
        Dropout rate (input, encoder outputs, controller input, generator state), in [0, 1).
    cd_rate : float
        Coordinated-dropout rate in [0, 1); 0 turns CD off.
    sv_rate : float
        Sample-validation rate in [0, 1); 0 turns SV off.
    sv_seed : int
        Seed of the sample-validation mask (the same for every member and epoch).
    kl_ic_scale, kl_co_scale : float
        Weights of the KL terms of the initial condition and of the inferred inputs.
    l2_gen_scale, l2_con_scale : float
        Weights of the L2 penalty of the generator and controller recurrent kernels.
    kl_start_epoch, l2_start_epoch : int
        First epoch (0-based) at which the KL / L2 ramp is above zero.
    kl_increase_epoch, l2_increase_epoch : int
        Number of epochs over which the KL / L2 weight ramps up to 1.
    lr : float
        Adam learning rate.
    adam_eps : float
        Adam epsilon.
    grad_clip : float
        Gradient-norm clip, per member, applied to the loss-scaled gradient.
    loss_scale : float
        The loss is multiplied by this before differentiation (as in LFADS). Adam is
        invariant to it; it sets where ``grad_clip`` acts.
    batch_size : int
        Largest number of trials per step; the train trials are split into
        ceil(n_train / batch_size) batches of near-equal size.
    max_epochs : int
        Maximum number of training epochs.
    patience : int
        Early stopping: epochs without improvement of the smoothed selection metric
        (counted after the ramps) before a member stops.
    selection_metric : str
        'valid_nll' (held-in neurons of the valid trials) or 'sv_nll' (needs sv_rate > 0).
    n_samples : int
        Posterior samples averaged at inference.
    seed : int
        Seed of the weights and random streams of a single model, and of the batch order.
    """

    ic_enc_dim: int = 64
    ci_enc_dim: int = 64
    ic_dim: int = 64
    con_dim: int = 64
    co_dim: int = 4
    gen_dim: int = 100
    fac_dim: int = 40
    ci_lag: int = 1
    cell_clip: float = 5.0
    ic_prior_var: float = 0.1
    ic_post_var_min: float = 1e-4
    co_prior_tau: float = 10.0
    co_prior_var: float = 0.1
    dropout: float = 0.3
    cd_rate: float = 0.5
    sv_rate: float = 0.0
    sv_seed: int = 0
    kl_ic_scale: float = 1e-4
    kl_co_scale: float = 1e-5
    l2_gen_scale: float = 0.3
    l2_con_scale: float = 1e-2
    kl_start_epoch: int = 0
    kl_increase_epoch: int = 50
    l2_start_epoch: int = 0
    l2_increase_epoch: int = 50
    lr: float = 4e-3
    adam_eps: float = 1e-8
    grad_clip: float = 200.0
    loss_scale: float = 1e4
    batch_size: int = 25
    max_epochs: int = 500
    patience: int = 50
    selection_metric: str = "valid_nll"
    n_samples: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        positive_ints = ("ic_enc_dim", "ci_enc_dim", "ic_dim", "con_dim", "gen_dim", "fac_dim")
        for name in positive_ints + ("batch_size", "max_epochs", "patience", "n_samples"):
            _check_int(name, getattr(self, name), low=1)
        for name in ("co_dim", "ci_lag", "kl_start_epoch", "l2_start_epoch"):
            _check_int(name, getattr(self, name), low=0)
        for name in ("kl_increase_epoch", "l2_increase_epoch", "seed", "sv_seed"):
            _check_int(name, getattr(self, name), low=0)
        for name in ("dropout", "cd_rate", "sv_rate"):
            _check_float(name, getattr(self, name), 0.0, 1.0, high_open=True)
        for name in ("kl_ic_scale", "kl_co_scale", "l2_gen_scale", "l2_con_scale"):
            _check_float(name, getattr(self, name), 0.0, math.inf)
        for name in ("cell_clip", "ic_prior_var", "ic_post_var_min", "co_prior_tau"):
            _check_float(name, getattr(self, name), 0.0, math.inf, low_open=True)
        for name in ("co_prior_var", "lr", "adam_eps", "grad_clip", "loss_scale"):
            _check_float(name, getattr(self, name), 0.0, math.inf, low_open=True)
        if self.selection_metric not in SELECTION_METRICS:
            raise ValueError(
                f"selection_metric: expected one of {SELECTION_METRICS}, "
                f"got {self.selection_metric!r}"
            )
        if self.selection_metric == "sv_nll" and self.sv_rate == 0.0:
            raise ValueError("selection_metric: 'sv_nll' needs sv_rate > 0 (e.g. sv_rate=0.1)")

    @property
    def ramp_end_epoch(self) -> int:
        """First epoch (0-based) at which both KL and L2 weights are 1."""
        return max(
            self.kl_start_epoch + self.kl_increase_epoch,
            self.l2_start_epoch + self.l2_increase_epoch,
        )

    def hparams(self) -> dict[str, float]:
        """The searchable hyperparameters as a dict (see ``SEARCHABLE``)."""
        return {name: float(getattr(self, name)) for name in SEARCHABLE}

    def replace(self, **changes: Any) -> LFADSConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (JSON-serializable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LFADSConfig:
        """Build from a dict; unknown keys raise a ValueError listing the valid names."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown LFADSConfig field(s) {unknown}; valid names: {names}")
        return cls(**values)


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")


def _check_float(
    name: str,
    value: Any,
    low: float,
    high: float,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a number in {left}{low}, {high}{right}, got {value!r}")
