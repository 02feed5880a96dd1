"""mace-torch models as mlip models: the weights of an exported model mapped exactly onto :class:`~mlip.models.MACE`.

The input is what ``mlip/interop/mace_exporter.py`` writes (``PREFIX.npz`` + ``PREFIX.json``). Every block of
mace-torch's ``ScaleShiftMACE`` has an mlip counterpart computing the same function, and each weight converts by a
fixed rule (no fitting):

* **e3nn normalisations.** e3nn's ``Linear`` and mlip's :class:`~mlip.kernels.EquivariantLinear` both divide by
  ``sqrt(fan_in)``: blocks are copied (re-ordered where the block orders differ). The one-hot embedding and the
  element-dependent skip ``FullyConnectedTensorProduct(h, one-hot(z))`` carry e3nn's ``1/sqrt(n_elements)`` (and its
  path weight), folded into the weights.
* **Radial MLP.** e3nn's ``FullyConnectedNet`` scales SiLU by ``normalize2mom``'s Monte-Carlo constant ``c`` (about
  1.67918); mlip's :class:`~mlip.nn.RadialMLP` by its own constant ``G``: the next layer's weights take ``c / G``.
  The last layer's columns are re-ordered from e3nn's instruction order to mlip's path order.
* **Edge direction.** mace-torch's edge vector is ``x_receiver - x_sender``, mlip's ``x_sender - x_receiver``
  (:mod:`mlip.keys`): ``Y_l(-r) = (-1)^l Y_l(r)``, so the weights of paths with an odd harmonic degree change sign.
* **Symmetric contraction.** mace-torch's basis ``U^{(ν)}[M, i_1..i_ν, k]`` and mlip's
  (:mod:`mlip.kernels.symmetric_basis`, coefficients of sorted monomials) span the same space of equivariant
  polynomials. Writing mace-torch's as monomial coefficients (``V[M, t, k] = Σ_{perm} U[M, perm(t), k]``), the change
  of basis ``T`` solves ``U_mlip T = V`` exactly (least squares with a residual check judged by the precision ``U``
  carries: 1e-9 for a float64 ``U``, 1e-5 for one equal to its float32 rounding, as in a model built in float32,
  stored so, or converted with ``.double()``), and the weights map
  as ``W_mlip = T W_mace`` per element and channel.
* **Readouts.** e3nn's ``NonLinearReadoutBlock`` (``normalize2mom``-scaled SiLU, ``H = 16 × heads`` hidden units)
  selects the chosen head's hidden block and output column.

Supported: ``ScaleShiftMACE`` and ``MACE`` with ``RealAgnosticInteractionBlock`` (first layer) and
``RealAgnosticResidualInteractionBlock``, ZBL pair repulsion and the Agnesi distance transform with mace-torch's
constants (:mod:`mlip.nn.pair`); one head is chosen (``head=``). Not yet: the density-normalised blocks, which raise
``MLIPInputError`` naming the block.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import torch

from mlip.errors import MLIPInputError
from mlip.kernels import Irrep, Irreps
from mlip.models.config import MACEConfig
from mlip.models.mace import MACE
from mlip.nn import pair

__all__ = ["read_export", "model_from_export"]

_FORMAT, _VERSION = "mlip-mace-export", 1


def _irreps(text: str) -> list[tuple[int, Irrep]]:
    """``"8x0e+8x1o"`` -> ``[(8, 0e), (8, 1o)]``, parsed by e3nn (a dependency of mlip)."""
    from e3nn import o3

    return [(mul, Irrep(ir.l, ir.p)) for mul, ir in o3.Irreps(text)]


def read_export(prefix: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``(description, arrays)`` of ``prefix.json`` / ``prefix.npz``, checked for format and version."""
    prefix = Path(prefix)
    js, npz = prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".npz")
    for path in (js, npz):
        if not path.is_file():
            raise MLIPInputError(f"{path}: not found (write it with mlip/interop/mace_exporter.py)")
    try:
        desc = json.loads(js.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MLIPInputError(f"{js}: not a JSON description ({err})") from err
    if desc.get("format") != _FORMAT or desc.get("version") != _VERSION:
        raise MLIPInputError(
            f"{js}: format {desc.get('format')!r} version {desc.get('version')!r}; mlip reads {_FORMAT!r} version {_VERSION}"
        )
    try:
        with np.load(npz) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise MLIPInputError(f"{npz}: not a readable array file ({err})") from err
    return desc, arrays


def _check_supported(desc: dict, where: str) -> None:
    if desc.get("distance_transform") not in (None, "AgnesiTransform"):
        raise MLIPInputError(f"{where}: unsupported distance transform {desc['distance_transform']!r}")
    classes = [b["class"] for b in desc["interactions"]]
    if classes[0] not in ("RealAgnosticInteractionBlock", "RealAgnosticResidualInteractionBlock"):
        raise MLIPInputError(f"{where}: unsupported first interaction block {classes[0]!r}")
    for k, name in enumerate(classes[1:], start=1):
        if name != "RealAgnosticResidualInteractionBlock":
            raise MLIPInputError(f"{where}: unsupported interaction block {name!r} in layer {k}")
    if any(not p["use_sc"] for p in desc["products"][1:]) or any(p["agnostic"] for p in desc["products"]):
        raise MLIPInputError(f"{where}: unsupported product blocks (agnostic products or no skip connection)")
    if desc["readouts"][-1]["class"] != "NonLinearReadoutBlock" or any(
        r["class"] != "LinearReadoutBlock" for r in desc["readouts"][:-1]
    ):
        raise MLIPInputError(f"{where}: unsupported readouts {[r['class'] for r in desc['readouts']]}")
    for layer in desc["interactions"][0]["radial_layers"][:-1]:
        if layer["act"] is None or layer["act"]["name"] != "silu":
            raise MLIPInputError(f"{where}: the radial MLP's activation must be SiLU, got {layer['act']}")


def _config(desc: dict, head: int) -> MACEConfig:
    hidden = _irreps(desc["interactions"][0]["hidden_irreps"])
    channels = hidden[0][0]
    if [ir for _, ir in hidden] != list(Irreps.spherical_harmonics(len(hidden) - 1)) or {
        m for m, _ in hidden
    } != {channels}:
        raise MLIPInputError(
            f"hidden irreps {desc['interactions'][0]['hidden_irreps']} are not C x (0e+1o+...)"
        )
    avg = {b["avg_num_neighbors"] for b in desc["interactions"]}
    if len(avg) != 1:
        raise MLIPInputError(f"layers with different avg_num_neighbors {sorted(avg)} are not supported")
    mlp = _irreps(desc["readouts"][-1]["hidden_irreps"])
    return MACEConfig(
        atomic_numbers=tuple(sorted(desc["atomic_numbers"])),
        atomic_energies=tuple(0.0 for _ in desc["atomic_numbers"]),  # set from the arrays
        r_max=desc["r_max"], num_bessel=desc["num_bessel"], num_polynomial_cutoff=desc["num_polynomial_cutoff"],
        max_ell=Irreps([ir for _, ir in _irreps(desc["sh_irreps"])]).lmax, channels=channels, max_L=len(hidden) - 1,
        num_interactions=len(desc["interactions"]),
        radial_mlp=tuple(desc["interactions"][0]["radial_mlp"]), readout_mlp=mlp[0][0] // len(desc["heads"]),
        avg_num_neighbors=avg.pop(), correlation=desc["products"][0]["correlation"], dtype="float64",
        backend="auto", first_interaction="residual" if "Residual" in desc["interactions"][0]["class"] else "agnostic",
        pair_repulsion=bool(desc.get("pair_repulsion")),
        distance_transform="agnesi" if desc.get("distance_transform") == "AgnesiTransform" else None,
    )  # fmt: skip


def model_from_export(prefix: str | Path, *, head: str | None = None, report: dict | None = None) -> MACE:
    """The mlip :class:`~mlip.models.MACE` computing what the exported mace-torch model computes (float64).

    ``head``: the head to import for a multi-head model (default: the first; mace-torch's ``"Default"``).
    ``report``: a dict that receives ``basis_precision`` (``"float64"``, or ``"float32"`` when any of mace-torch's
    ``U`` matrices carries only float32 precision) and ``basis_residual`` (the largest relative residual of the
    change of basis): what the conversion reached.
    """
    desc, arrays = read_export(prefix)
    _check_supported(desc, str(prefix))
    heads = desc["heads"]
    if head is None:
        head = heads[0]
    if head not in heads:
        raise MLIPInputError(f"{prefix}: no head {head!r}; the model's heads are {heads}")
    h = heads.index(head)
    model = MACE(_config(desc, h))
    loader = _Loader(model, desc, arrays, h)
    loader.load()
    if report is not None:
        report.update(basis_precision=loader.basis_precision, basis_residual=loader.basis_residual)
    return model


class _Loader:
    """Writes the converted arrays into ``model`` (see the module docstring for each rule)."""

    def __init__(self, model: MACE, desc: dict, arrays: dict[str, np.ndarray], head: int) -> None:
        self.model, self.desc, self.a, self.head = model, desc, arrays, head
        z_mace = list(desc["atomic_numbers"])
        self.perm = [z_mace.index(z) for z in model.atomic_numbers]  # mlip element index -> mace's
        self.n_el = len(z_mace)
        self.channels = model.config.channels
        # the precision mace-torch's U matrices carry, whatever the model's dtype: float32 when every one equals its
        # float32 rounding (built in float32, stored so, or converted with .double()); one U with float64 digits
        # means they were computed in float64 (a simple U, all small rationals, can equal its rounding either way)
        us = [np.asarray(arrays[k], dtype=np.float64) for k in arrays if ".U_matrix_" in k]
        carries64 = any(not np.array_equal(u, u.astype(np.float32).astype(np.float64)) for u in us)
        self.basis_precision = "float64" if carries64 else "float32"
        self.basis_residual = 0.0

    def t(self, key: str) -> torch.Tensor:
        if key not in self.a:
            raise MLIPInputError(f"the export has no array {key!r}")
        return torch.from_numpy(np.asarray(self.a[key], dtype=np.float64))

    def load(self) -> None:
        m = self.model
        with torch.no_grad():
            e0 = self.t("atomic_energies_fn.atomic_energies").reshape(-1, self.n_el)[self.head]
            m.set_atomic_energies(e0[self.perm])
            emb = self.t("node_embedding.linear.weight").view(self.n_el, self.channels)
            m.embedding.copy_(emb[self.perm] / math.sqrt(self.n_el))
            scale, shift = 1.0, 0.0
            if self.desc["scale_shift"]:
                scale, shift = (self._per_head(f"scale_shift.{k}") for k in ("scale", "shift"))
            m.config = dataclasses.replace(m.config, scale=scale, shift=shift)
            self._check_pair_constants()
            for t, block in enumerate(self.desc["interactions"]):
                self._interaction(t, block)
                self._product(t)
            self._readouts()

    def _per_head(self, key: str) -> float:
        values = self.t(key).reshape(-1)
        return float(values[self.head] if values.numel() > 1 else values[0])

    def _check_pair_constants(self) -> None:
        """ZBL's and Agnesi's constants are mlip's fixed ones (mace-torch's defaults): refuse other values."""
        expected = {}
        if self.desc.get("pair_repulsion"):
            expected |= {"pair_repulsion_fn.c": pair._ZBL_C, "pair_repulsion_fn.a_prefactor": pair._ZBL_A[0],
                         "pair_repulsion_fn.a_exp": pair._ZBL_A[2],
                         "pair_repulsion_fn.p": self.model.config.num_polynomial_cutoff,
                         "pair_repulsion_fn.covalent_radii": pair.covalent_radii()}  # fmt: skip
        if self.desc.get("distance_transform"):
            q, p, a = pair._AGNESI
            expected |= {"radial_embedding.distance_transform.q": q, "radial_embedding.distance_transform.p": p,
                         "radial_embedding.distance_transform.a": a,
                         "radial_embedding.distance_transform.covalent_radii": pair.covalent_radii()}  # fmt: skip
        for key, value in expected.items():
            got = self.t(key)
            want = torch.as_tensor(value, dtype=torch.float64)
            if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-6, atol=1e-12):
                raise MLIPInputError(
                    f"{key} = {got.tolist()} differs from mlip's fixed value {want.tolist()}"
                )

    # ---- interaction ---------------------------------------------------------------------------------------
    def _paths(self, t: int, block: dict) -> tuple[list[int], list[float]]:
        """For each e3nn instruction of the convolution: mlip's path index, and the factor its weights take
        (e3nn's path weight over mlip's ``sqrt(2l3+1)``, and the edge-direction sign ``(-1)^{l2}``)."""
        tp = self.model.interactions[t].tp_descriptor.channelwise
        ours = {(p.i1, p.i2, p.ir_out): n for n, p in enumerate(tp.paths)}
        node = _irreps(block["edge_irreps"])
        sh = _irreps(block["edge_attrs_irreps"])
        mid = _irreps(block["irreps_mid"])
        index, factor = [], []
        for i1, i2, i_out, mode, _, path_weight in block["instructions"]:
            if mode != "uvu":
                raise MLIPInputError(f"layer {t}: convolution instruction mode {mode!r}, expected 'uvu'")
            ir1, ir2, ir3 = node[i1][1], sh[i2][1], mid[i_out][1]
            key = (tp.irreps_in1.index(ir1), tp.irreps_in2.index(ir2), ir3)
            if key not in ours:
                raise MLIPInputError(f"layer {t}: coupling {ir1} x {ir2} -> {ir3} has no mlip path")
            index.append(ours[key])
            factor.append(path_weight / math.sqrt(ir3.dim) * (-1) ** ir2.l)
        if sorted(index) != list(range(tp.num_paths)):
            raise MLIPInputError(
                f"layer {t}: the convolution's instructions do not cover mlip's paths one to one"
            )
        return index, factor

    def _interaction(self, t: int, block: dict) -> None:
        ours = self.model.interactions[t]
        p = f"interactions.{t}."
        index, factor = self._paths(t, block)
        # radial MLP: fold e3nn's variances and activation constants into the weights
        layers, gain = block["radial_layers"], ours.radial._SILU_GAIN
        carry = 1.0
        for k, (layer, w) in enumerate(zip(layers, ours.radial.weights)):
            src = self.t(f"{p}conv_tp_weights.layer{k}.weight") * carry / math.sqrt(layer["var_in"])
            if k == len(layers) - 1:
                src = src * math.sqrt(layer["var_out"])
                c = self.channels
                cols = (
                    src.view(src.shape[0], len(index), c)
                    * torch.tensor(factor, dtype=src.dtype)[None, :, None]
                )
                dest = torch.empty_like(cols)
                dest[:, index] = cols
                src = dest.reshape(src.shape[0], -1)
            else:
                carry = layer["act"]["cst"] * math.sqrt(layer["var_out"]) / gain
            w.copy_(src)
        node = _irreps(block["edge_irreps"])
        _copy_linear(
            ours.linear_up, self.t(p + "linear_up.weight"), _irreps(block["node_feats_irreps"]), node
        )
        mid = _irreps(block["irreps_mid"])
        # e3nn's irreps_mid block k is instruction k's output (one each): mlip's block of path index[k]
        in_map = {k: index[[ins[2] for ins in block["instructions"]].index(k)] for k in range(len(mid))}
        _copy_linear(
            ours.linear, self.t(p + "linear.weight"), mid, _irreps(block["target_irreps"]), in_map=in_map
        )
        self._skip(t, block, ours)

    def _skip(self, t: int, block: dict, ours) -> None:
        """e3nn ``FullyConnectedTensorProduct(x, one-hot(z))``: per irrep ``W[u, z, w]`` times its path weight
        over ``sqrt(2l+1)`` (e3nn's ``l x 0 -> l`` coupling is ``δ / sqrt(2l+1)``); mlip divides by ``sqrt(C)``."""
        flat = self.t(f"interactions.{t}.skip_tp.weight")
        irreps_in = _irreps(block["skip_irreps_in1"])
        irreps_out = _irreps(block["skip_irreps_out"])
        start = 0
        weight = ours.skip.weight  # [pairs, n_el, C_in, C_out]
        for i1, _, i_out, mode, _, path_weight in block["skip_instructions"]:
            if mode != "uvw":
                raise MLIPInputError(f"layer {t}: skip instruction mode {mode!r}, expected 'uvw'")
            (mul1, ir1), (mul_out, ir_out) = irreps_in[i1], irreps_out[i_out]
            size = mul1 * self.n_el * mul_out
            w = (
                flat[start : start + size].view(mul1, self.n_el, mul_out)
                * path_weight
                / math.sqrt(ir_out.dim)
            )
            start += size
            # ElementLinear's output block -> (input block, weight index)
            b, pair = ours.skip._source.get(list(ours.skip.irreps_out).index(ir_out), (None, None))
            if pair is None or ours.skip.irreps_in[b] != ir1:
                raise MLIPInputError(f"layer {t}: skip block {ir1} -> {ir_out} has no mlip counterpart")
            weight[pair].copy_(w.permute(1, 0, 2)[self.perm] * math.sqrt(mul1))
        if start != flat.numel():
            raise MLIPInputError(
                f"layer {t}: skip weights have {flat.numel()} values, the instructions use {start}"
            )

    # ---- product basis -------------------------------------------------------------------------------------
    def _product(self, t: int) -> None:
        ours = self.model.products[t]
        desc = ours.contraction.descriptor
        weight = ours.contraction.weight  # [n_el, num_weights, C]
        p = f"products.{t}.symmetric_contractions.contractions."
        corr = desc.correlation
        for j, ir_out in enumerate(desc.irreps_out):
            for nu in range(1, corr + 1):
                u = self.t(f"{p}{j}.U_matrix_{nu}")
                if ir_out.l == 0:
                    u = u.unsqueeze(0)
                w_key = f"{p}{j}.weights_max" if nu == corr else f"{p}{j}.weights.{corr - 1 - nu}"
                w_mace = (
                    self.t(w_key) if w_key in self.a else torch.zeros(self.n_el, u.shape[-1], self.channels)
                )
                idx = (nu - 1) * len(desc.irreps_out) + j
                basis = desc.bases[idx]
                change, residual = _basis_change(
                    basis, u, where=f"layer {t}, {ir_out}, degree {nu}", precision=self.basis_precision
                )
                self.basis_residual = max(self.basis_residual, residual)
                o0, o1 = desc.weight_offsets[idx], desc.weight_offsets[idx + 1]
                weight[:, o0:o1].copy_(torch.einsum("pk,zkc->zpc", change, w_mace)[self.perm])
        _copy_linear(
            ours.linear,
            self.t(f"products.{t}.linear.weight"),
            *[_with_mul(ours.irreps_out, self.channels)] * 2,
        )

    # ---- readouts ------------------------------------------------------------------------------------------
    def _readouts(self) -> None:
        n_heads, h, c = len(self.desc["heads"]), self.head, self.channels
        for t, (ours, block) in enumerate(zip(self.model.readouts, self.desc["readouts"])):
            p = f"readouts.{t}."
            if block["class"] == "LinearReadoutBlock":
                w = self.t(p + "linear.weight").view(c, n_heads)  # only the 0e block maps to 0e
                ours.weight.copy_(w[:, h])
                continue
            hidden = _irreps(block["hidden_irreps"])[0][0]
            per_head = hidden // n_heads
            w1 = self.t(p + "linear_1.weight").view(c, hidden)[:, h * per_head : (h + 1) * per_head]
            w2 = self.t(p + "linear_2.weight").view(hidden, n_heads)[h * per_head : (h + 1) * per_head, h]
            cst = block["gate"]["cst"]
            ours.w1.copy_(w1)
            # e3nn divides by sqrt(hidden) (all heads), mlip by sqrt(per_head); the gate's constant folds in too
            ours.w2.copy_(w2 * cst * math.sqrt(per_head / hidden))


def _with_mul(irreps: Irreps, mul: int) -> list[tuple[int, Irrep]]:
    return [(mul, ir) for ir in irreps]


def _copy_linear(
    ours, flat: torch.Tensor, irreps_in, irreps_out, in_map: dict[int, int] | None = None
) -> None:
    """e3nn ``Linear`` weights (``[mul_in, mul_out]`` per ``(i_in, i_out)`` pair of equal irreps, in e3nn's order)
    into :class:`~mlip.kernels.EquivariantLinear` ``ours``; ``in_map``: e3nn input block -> mlip input block."""
    in_map = in_map or {k: k for k in range(len(irreps_in))}
    blocks, start = {}, 0
    for i_in, (mul_in, ir_in) in enumerate(irreps_in):
        for i_out, (mul_out, ir_out) in enumerate(irreps_out):
            if ir_in == ir_out:
                blocks[(in_map[i_in], i_out)] = flat[start : start + mul_in * mul_out].view(mul_in, mul_out)
                start += mul_in * mul_out
    if start != flat.numel():
        raise MLIPInputError(f"linear {irreps_in} -> {irreps_out}: {flat.numel()} weights, expected {start}")
    for (k, sources), w in zip(ours._plan, ours.weights):
        w.copy_(torch.cat([blocks[(b, k)] for b in sources], dim=0))


def _monomial_coefficients(u: torch.Tensor, monomials: torch.Tensor) -> torch.Tensor:
    """``V[M, t, k] = Σ_{perm} U[M, perm(t), k]``: mace-torch's dense ``U [M, d, .., d, k]`` on sorted monomials."""
    out = torch.zeros(u.shape[0], monomials.shape[0], u.shape[-1], dtype=u.dtype)
    for n, mono in enumerate(monomials.tolist()):
        for perm in set(itertools.permutations(mono)):
            out[:, n] += u[(slice(None), *perm)]
    return out


def _basis_change(basis, u_mace: torch.Tensor, *, where: str, precision: str) -> tuple[torch.Tensor, float]:
    """``(T [n_mlip, n_mace], relative residual)`` with ``U_mlip T = V_mace`` (see the module docstring). The
    residual is judged by the ``precision`` mace-torch's ``U`` matrices actually carry, whatever the model's dtype
    (a model built in float32, saved so, or converted with ``.double()`` as mace-torch's calculator does for
    ``default_dtype="float64"``: ``"float32"``, held to 1e-5; else 1e-9)."""
    tol = 1e-9 if precision == "float64" else 1e-5
    v = _monomial_coefficients(u_mace, basis.monomials)
    a = basis.U.reshape(-1, basis.U.shape[-1])
    b = v.reshape(-1, v.shape[-1])
    change = torch.linalg.lstsq(a, b).solution
    residual = (a @ change - b).abs().max().item() / max(1.0, b.abs().max().item())
    if residual > tol:
        raise MLIPInputError(
            f"{where}: mace-torch's basis is not in mlip's span (relative residual {residual:.1e}, bound {tol:.0e} "
            f"for a U of {precision} precision)"
        )
    return change, residual
