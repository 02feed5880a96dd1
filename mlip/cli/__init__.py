"""The console scripts, one module each (``train`` for ``train.py``/``mlip-train``, ``eval``, ``preprocess``,
``relax``, ``md``, ``export``, ``import_mace``), on top of every other layer: argument parsing and configuration
only, the work done by library functions a user can call. :mod:`mlip.cli.console` is what they share (user errors
as one line and exit status 2), :mod:`mlip.cli.appended` how the relaxation and MD scripts continue a run."""

from mlip.cli.console import add_debug_flag, console_main

__all__ = ["add_debug_flag", "console_main"]
