"""LFADS: sequential autoencoder trained as a vectorized population, with CD and SV.

Modules: ``config`` (LFADSConfig), ``masks`` (coordinated dropout, sample validation),
``layers`` (population GRU), ``network`` (parameters and forward pass), ``objective`` (NLL,
KL, L2, ramps), ``optim`` (population Adam), ``train`` (PopulationTrainer, fit_population),
``inference`` (posterior averaging), ``estimator`` (LFADS).

Examples
--------
>>> import numpy as np
>>> from lfadskit.data import SpikeData
>>> from lfadskit.lfads import LFADS, LFADSConfig, fit_population
>>> data = SpikeData(spikes=np.random.default_rng(0).poisson(1.0, size=(12, 8, 5)))
>>> small = LFADSConfig(ic_enc_dim=4, ci_enc_dim=4, ic_dim=2, con_dim=4, gen_dim=4,
...                     fac_dim=2, max_epochs=2)
>>> LFADS(small).fit(data).predict_rates(data).shape
(12, 8, 5)
>>> result = fit_population(data, small, {"lr": [1e-3, 4e-3], "cd_rate": [0.0, 0.3]})
>>> result.params["gen.w_hh"].shape[0]  # two members trained in lockstep
2
"""

from lfadskit.lfads.config import SEARCHABLE, LFADSConfig
from lfadskit.lfads.estimator import LFADS
from lfadskit.lfads.inference import infer
from lfadskit.lfads.masks import (
    apply_sample_validation,
    coordinated_dropout,
    sample_validation_mask,
)
from lfadskit.lfads.train import PopulationResult, PopulationTrainer, fit_population

__all__ = [
    "LFADS",
    "LFADSConfig",
    "SEARCHABLE",
    "PopulationResult",
    "PopulationTrainer",
    "fit_population",
    "infer",
    "coordinated_dropout",
    "sample_validation_mask",
    "apply_sample_validation",
]
