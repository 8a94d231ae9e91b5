"""MLflow's ``loader_module`` for riskmodel models: ``riskmodel._pyfunc``.

Every registered model names this module in its ``MLmodel`` file, so it stays here
whatever the package layout; the flavour itself lives in :mod:`riskmodel.lifecycle`.
"""

from .lifecycle import load_pyfunc as _load_pyfunc

__all__ = ["_load_pyfunc"]
