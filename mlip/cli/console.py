"""What every console script shares: user errors as one line and exit status 2, tracebacks only for bugs.

A console script's ``main(argv)`` is wrapped by :func:`console_main`:

* an :class:`~mlip.errors.MLIPError` (bad config, data, model file, argument; an output that cannot be written)
  prints ``PROG: error: MESSAGE`` on one line to stderr and returns 2, like argparse's own usage errors;
* ``KeyboardInterrupt`` prints ``PROG: interrupted`` (and the hint it carries, e.g. how to resume) and returns 130;
* anything else is a bug: its traceback is shown as usual.

``--debug`` (or ``MLIP_DEBUG=1`` in the environment) shows the traceback of user errors too.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable

from mlip.errors import MLIPError

__all__ = ["add_debug_flag", "add_pbc_flag", "console_main", "pbc_flags"]


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug`` (handled by :func:`console_main`) so that it shows in ``--help``."""
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any error")


def add_pbc_flag(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--pbc T|F T|F T|F`` (the ``data.pbc`` of a training config); :func:`pbc_flags` reads it."""
    parser.add_argument("--pbc", nargs=3, choices=["T", "F"], default=None, metavar="T|F", help=help)


def pbc_flags(values: list[str] | None) -> list[bool] | None:
    """``--pbc``'s three ``T``/``F`` as booleans (``None`` when not given)."""
    return None if values is None else [flag == "T" for flag in values]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def console_main(prog: str) -> Callable[[Callable[[list[str]], int]], Callable[[list[str] | None], int]]:
    """Decorate ``main(argv) -> int`` as a console script named ``prog`` (see the module docstring)."""

    def wrap(main: Callable[[list[str]], int]) -> Callable[[list[str] | None], int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            argv = list(sys.argv[1:] if argv is None else argv)
            debug = "--debug" in argv or os.environ.get("MLIP_DEBUG", "") not in ("", "0")
            try:
                return main(argv)
            except MLIPError as err:
                if debug:
                    raise
                print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
                return 2
            except KeyboardInterrupt as err:
                if debug:
                    raise
                hint = _one_line(str(err)) if isinstance(err, KeyboardInterrupt) and err.args else ""
                print(f"{prog}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
                return 130

        return run

    return wrap
