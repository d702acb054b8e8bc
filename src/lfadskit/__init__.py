"""lfadskit: LFADS sequential autoencoders for spiking data, with coordinated dropout, sample
validation and population based hyperparameter search.

Examples
--------
>>> import lfadskit
>>> data = lfadskit.simulate.lorenz(n_conditions=8, n_trials_per_condition=5, seed=0)
>>> data.spikes.shape
(40, 50, 29)
>>> model = lfadskit.LFADS(max_epochs=300).fit(data)   # doctest: +SKIP
>>> real = lfadskit.load("mc_maze_small/")             # doctest: +SKIP
"""

from lfadskit import metrics, simulate
from lfadskit.data import DataError, SpikeData, make_split
from lfadskit.formats import load, save
from lfadskit.lfads import LFADS, LFADSConfig

__version__ = "0.1.0"

__all__ = [
    "LFADS",
    "LFADSConfig",
    "DataError",
    "SpikeData",
    "load",
    "make_split",
    "metrics",
    "save",
    "simulate",
]
