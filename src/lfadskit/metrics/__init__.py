"""Metrics of predicted firing rates, with the Neural Latents Benchmark definitions.

Pure numpy functions. Arguments come counts (or the truth) first, then the prediction, and every
name says whether it holds ``rates`` (expected spikes per bin) or ``log_rates``.

NaN in a counts array marks an unobserved element: it is skipped, as ``nlb_tools`` does. NaN,
infinite or negative *rates* are errors. A rate of exactly zero is replaced by 1e-9 before
taking its log (the benchmark's convention), so a zero prediction gives a large but finite NLL.

Examples
--------
>>> import numpy as np
>>> counts = np.array([[[0.0, 1.0], [2.0, 1.0]]])
>>> rates = np.full_like(counts, 1.0)
>>> round(poisson_nll(counts, rates), 4)
1.1733
>>> round(bits_per_spike(counts, rates), 4)
0.0

Modules: :mod:`~lfadskit.metrics.rates` (Poisson NLL, bits per spike, R² against true rates),
:mod:`~lfadskit.metrics.decoding` (ridge decoders, velocity R²) and
:mod:`~lfadskit.metrics.psth` (condition-averaged rates, PSTH R²); every public name is
importable from :mod:`lfadskit.metrics`.
"""

from lfadskit.metrics.decoding import (
    DEFAULT_ALPHAS,
    RidgeDecoder,
    decode_behavior,
    fit_ridge_decoder,
    velocity_r2,
    velocity_r2_cv,
)
from lfadskit.metrics.psth import condition_psth, psth_r2
from lfadskit.metrics.rates import (
    ZERO_RATE,
    bits_per_spike,
    co_bps,
    fp_bps,
    poisson_nll,
    poisson_nll_log_rates,
    rate_r2,
)

__all__ = [
    "DEFAULT_ALPHAS",
    "RidgeDecoder",
    "ZERO_RATE",
    "bits_per_spike",
    "co_bps",
    "condition_psth",
    "decode_behavior",
    "fit_ridge_decoder",
    "fp_bps",
    "poisson_nll",
    "poisson_nll_log_rates",
    "psth_r2",
    "rate_r2",
    "velocity_r2",
    "velocity_r2_cv",
]
