"""Simulated spiking data with known ground-truth rates.

Two seeded, deterministic simulators return a :class:`lfadskit.data.SpikeData` whose ``truth``
holds the true rates (expected spikes per bin) in the layout of ``data.recon``:

- :func:`lorenz`: the 3-D Lorenz system (sigma 10, rho 28, beta 8/3), normalized and read out
  by a random linear map to log-rates (the synthetic setup of the LFADS and coordinated-dropout
  papers).
- :func:`chaotic_rnn`: a random tanh network with gain 1.5 (chaotic), read out by a random
  projection through a scaled sigmoid (the synthetic setup of the LFADS paper).

Trials are grouped in conditions: all trials of one condition share the latent trajectory
(and so the true rates) and differ only in their Poisson spike counts. Extra neurons
(``n_heldout``) and extra bins after the window (``n_forward``) are simulated from the same
latents, so co-smoothing and forward-prediction metrics can be checked on simulated data.

Modules: :mod:`~lfadskit.simulate.lorenz_system` (:func:`lorenz`),
:mod:`~lfadskit.simulate.rnn_system` (:func:`chaotic_rnn`) and
:mod:`~lfadskit.simulate.common` (argument checks, RK4, the split and the assembly they share).

Randomness comes from one ``seed``, split into independent streams (latent initial
conditions and dynamics weights, readout weights, Poisson noise, train/valid split), so that
e.g. changing ``n_trials_per_condition`` keeps the latent trajectories and readout unchanged,
and adding held-out neurons or forward bins keeps the true rates of the held-in neurons in the
input window unchanged (only the Poisson draws change).

Examples
--------
>>> from lfadskit.simulate import lorenz
>>> data = lorenz(n_conditions=4, n_trials_per_condition=3, seed=0)
>>> data.spikes.shape, data.truth.shape
((12, 50, 29), (12, 50, 29))
>>> data, latents = lorenz(n_conditions=4, n_trials_per_condition=3, return_latents=True)
>>> latents.shape
(12, 50, 3)
"""

from lfadskit.simulate.common import stratified_split
from lfadskit.simulate.lorenz_system import lorenz, lorenz_vector_field
from lfadskit.simulate.rnn_system import chaotic_rnn, rnn_vector_field, rnn_weights

__all__ = [
    "chaotic_rnn",
    "lorenz",
    "lorenz_vector_field",
    "rnn_vector_field",
    "rnn_weights",
    "stratified_split",
]
