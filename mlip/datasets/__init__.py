"""Built-in datasets whose labels need a model-level term, so they sit above :mod:`mlip.longrange` and not in
:mod:`mlip.data` (which knows nothing above it): the Tosi–Fumi NaCl generator (:mod:`mlip.datasets.nacl`), whose
Coulomb sums are :func:`mlip.longrange.coulomb_energy`. (The EMT Cu–Au generator needs only ASE and stays in
:mod:`mlip.data`.)"""

from mlip.datasets.nacl import TosiFumiNaCl, generate_nacl_dataset

__all__ = ["TosiFumiNaCl", "generate_nacl_dataset"]
