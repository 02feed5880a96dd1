"""Write the API reference's pages from the package: ``python docs/api/generate.py``.

One page per subpackage (and one for the top-level modules): the public names (the subpackage's ``__all__``,
linked), then every module of it with its members. ``tests/test_api_docs.py`` checks that the pages in the
repository are what this script writes, so a new module or export cannot be left out.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def _modules(package) -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".") if not m.ispkg
    )


def _data_target(package: str, name: str, modules: list[str]) -> str:
    """``package.name``, or ``name <module.name>`` for a constant re-exported from the module that assigns it
    (a constant carries no ``__module__`` for the reference to be resolved by)."""
    obj = getattr(importlib.import_module(package), name)
    if inspect.ismodule(obj) or hasattr(obj, "__module__") and (inspect.isclass(obj) or callable(obj)):
        return f"{package}.{name}"
    for module in modules:
        source = inspect.getsource(importlib.import_module(module))
        if re.search(rf"^{re.escape(name)}\b[^=\n]*=", source, re.M):
            return f"{package}.{name} <{module}.{name}>"
    return f"{package}.{name}"


def public_names(package: str, modules: list[str]) -> list[str]:
    """The package's ``__all__``; for a package whose modules are the public units (``mlip.interop``,
    ``mlip.training``: an empty ``__all__``), each module's ``__all__``."""
    pkg = importlib.import_module(package)
    if pkg.__all__:
        return [
            _data_target(package, name, modules) for name in sorted(pkg.__all__) if not name.startswith("__")
        ]
    names = []
    for name in modules:
        module = importlib.import_module(name)
        if (module.__doc__ or "").startswith("The old import path of"):  # re-exports of a moved module
            continue
        names += [_data_target(name, k, [name]) for k in sorted(module.__all__)]
    return names


def _page(title: str, package: str | None, modules: list[str]) -> str:
    lines = [title, "=" * len(title), ""]
    if package is not None:
        members = (
            ":members:" if package == "mlip" else ":no-members:"
        )  # mlip's own functions live in __init__
        lines += [f".. automodule:: {package}", f"   {members}", "", "Public API", "----------", ""]
        lines += [f"- :py:obj:`{name}`" for name in public_names(package, modules)] + [""]
    for name in modules:
        lines += [name, "-" * len(name), "", f".. automodule:: {name}", ""]
    return "\n".join(lines)


def pages() -> dict[str, str]:
    """``file name -> text`` of every page, ``index.rst`` included."""
    import mlip

    top = sorted(m.name for m in pkgutil.iter_modules(mlip.__path__, "mlip.") if not m.ispkg)
    subs = sorted(m.name for m in pkgutil.iter_modules(mlip.__path__, "mlip.") if m.ispkg)
    out = {"mlip.rst": _page("mlip", "mlip", top)}
    for sub in subs:
        out[f"{sub}.rst"] = _page(sub, sub, _modules(importlib.import_module(sub)))
    toc = "\n".join(f"   {name[:-4]}" for name in sorted(out))
    out["index.rst"] = (
        "mlip API reference\n==================\n\n"
        "Generated from the docstrings (``docs/api/generate.py``). Each page lists a subpackage's public API (its\n"
        "``__all__``) and then documents its modules. Features are channel-last, ``[..., irreps.dim, channels]``;\n"
        "units are eV, Å and e throughout; the data keys and their conventions are in :mod:`mlip.keys`.\n\n"
        f".. toctree::\n   :maxdepth: 1\n\n{toc}\n"
    )
    return out


if __name__ == "__main__":
    for name, text in pages().items():
        (HERE / name).write_text(text)
    print(f"wrote {len(pages())} pages to {HERE}")
