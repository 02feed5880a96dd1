"""The errors mlip raises for things the user can fix, apart from bugs.

* :class:`MLIPInputError`: bad input: a config value, a data file, a frame, a model file, a command-line argument.
  Its message is one line that names the file, frame or key and says what to do.
* :class:`MLIPOutputError`: an output could not be written (full disk, no permission); the previous version of the
  file is left as it was.

Both derive from :class:`MLIPError`. The console scripts (:func:`mlip.cli.console_main`) print such an error as one
line and exit with status 2; any other exception is a bug and shows its traceback. ``MLIPInputError`` is also a
``ValueError`` (and :class:`MLIPFileNotFoundError` a ``FileNotFoundError``), so ``except ValueError`` in user code
keeps working.
"""

from __future__ import annotations

__all__ = ["MLIPError", "MLIPFileNotFoundError", "MLIPInputError", "MLIPOutputError"]


class MLIPError(Exception):
    """Base of the errors a user can fix; never raised for a bug."""


class MLIPInputError(MLIPError, ValueError):
    """Bad input (config, data, model file, argument); the message names where and what."""


class MLIPFileNotFoundError(MLIPInputError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class MLIPOutputError(MLIPError, OSError):
    """An output could not be written; the previous file, if any, is unchanged."""
