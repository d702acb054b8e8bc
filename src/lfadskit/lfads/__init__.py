"""LFADS: sequential autoencoder trained as a vectorized population, with CD and SV."""

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
    "infer",
    "LFADSConfig",
    "SEARCHABLE",
    "PopulationResult",
    "PopulationTrainer",
    "fit_population",
    "coordinated_dropout",
    "sample_validation_mask",
    "apply_sample_validation",
]
