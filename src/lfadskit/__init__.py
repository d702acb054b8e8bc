"""lfadskit: LFADS sequential autoencoders for spiking data, with coordinated dropout, sample
validation and population based hyperparameter search.

Examples
--------
>>> import lfadskit
>>> data = lfadskit.simulate.lorenz(seed=0)          # doctest: +SKIP
>>> data = lfadskit.load("mc_maze_small/")           # doctest: +SKIP
"""

from lfadskit import metrics, simulate
from lfadskit.data import DataError, SpikeData, make_split
from lfadskit.formats import load, save

__version__ = "0.1.0"

__all__ = ["DataError", "SpikeData", "load", "make_split", "metrics", "save", "simulate"]
