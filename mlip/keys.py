"""The names, shapes, dtypes and units of every field that flows through mlip.

A graph (one structure) and a batch (many structures) are plain ``dict[str, torch.Tensor]``; the keys are the
constants below, never bare strings elsewhere in the package.

Units are ASE's: Å, eV, eV/Å, eV/Å³, elementary charge e.

Conventions (written here once)
-------------------------------
Edges
    ``EDGE_INDEX[0]`` is the *sender* j (the neighbour), ``EDGE_INDEX[1]`` the *receiver* i (the centre atom).
    Messages flow from sender to receiver and are summed on the receiver.
Edge vectors and periodic shifts
    ``EDGE_SHIFTS`` holds integer image counts ``S`` (one row per edge). The edge vector points from receiver to
    sender::

        r_ij = positions[j] - positions[i] + S_ij @ cell        (cell rows are the lattice vectors)

    The Cartesian shift ``S @ cell`` is computed inside the model from the integer shifts, so that a strain of the
    cell reaches every edge vector and the stress comes out of autograd.
Stress
    ASE's sign: ``stress = (1/V) dE/dε`` for a symmetric strain ε, so a cell that wants to expand (it is
    compressed) has negative stress, and a stretched one positive. VASP/MPtrj values ("positive = compressive",
    kBar) become ``stress_ase = -0.1 * stress_kbar`` GPa, then eV/Å³; the readers do this conversion and
    nothing downstream sees any other sign.
Virials
    ``virial = -V * stress`` (eV), the same sign convention as mace-torch's ``REF_virials``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "POSITIONS",
    "ATOMIC_NUMBERS",
    "FORCES",
    "BATCH",
    "NODE_ENERGY",
    "EDGE_INDEX",
    "EDGE_SHIFTS",
    "CELL",
    "PBC",
    "ENERGY",
    "STRESS",
    "VIRIALS",
    "ENERGY_WEIGHT",
    "FORCES_WEIGHT",
    "STRESS_WEIGHT",
    "WEIGHT",
    "N_ATOMS",
    "CHARGES",
    "FORCES_MASK",
    "CHARGES_WEIGHT",
    "TOTAL_CHARGE",
    "LR_KGRID",
    "LR_KVALID",
    "LR_FREE_PAIRS",
    "LR_SLAB_HEIGHT",
    "NODE_KEYS",
    "GRAPH_KEYS",
    "EDGE_KEYS",
]


# ---- per-atom (node) fields -------------------------------------------------------------------------------------
POSITIONS: Final[str] = "positions"
"""[n_atoms, 3] float, Å. Cartesian positions."""
ATOMIC_NUMBERS: Final[str] = "atomic_numbers"
"""[n_atoms] int64. Atomic numbers Z."""
FORCES: Final[str] = "forces"
"""[n_atoms, 3] float, eV/Å. Reference or predicted forces, -dE/dx."""
BATCH: Final[str] = "batch"
"""[n_atoms] int64. Index of the structure each atom belongs to (0 for a single graph)."""
NODE_ENERGY: Final[str] = "node_energy"
"""[n_atoms] float, eV. Per-atom energy contributions (predicted), E0 included."""

# ---- per-edge fields --------------------------------------------------------------------------------------------
EDGE_INDEX: Final[str] = "edge_index"
"""[2, n_edges] int64. Row 0 sender j, row 1 receiver i (see the module docstring)."""
EDGE_SHIFTS: Final[str] = "edge_shifts"
"""[n_edges, 3] float (integer values). Image counts S: r_ij = x_j - x_i + S @ cell."""

# ---- per-structure (graph) fields -------------------------------------------------------------------------------
CELL: Final[str] = "cell"
"""[n_graphs, 3, 3] float, Å. Lattice vectors as rows; zeros for a free molecule."""
PBC: Final[str] = "pbc"
"""[n_graphs, 3] bool. Periodic directions."""
ENERGY: Final[str] = "energy"
"""[n_graphs] float, eV. Total (potential) energy."""
STRESS: Final[str] = "stress"
"""[n_graphs, 3, 3] float, eV/Å³. ASE sign (module docstring)."""
VIRIALS: Final[str] = "virials"
"""[n_graphs, 3, 3] float, eV. virial = -V * stress."""
ENERGY_WEIGHT: Final[str] = "energy_weight"
"""[n_graphs] float. Per-structure loss weight of the energy term (0 masks a missing label)."""
FORCES_WEIGHT: Final[str] = "forces_weight"
"""[n_graphs] float. Per-structure loss weight of the force term (0 masks a missing label)."""
STRESS_WEIGHT: Final[str] = "stress_weight"
"""[n_graphs] float. Per-structure loss weight of the stress term (0 where no stress label exists)."""
WEIGHT: Final[str] = "weight"
"""[n_graphs] float. Overall per-configuration weight (``config_weight``), multiplies every term."""
N_ATOMS: Final[str] = "n_atoms"
"""[n_graphs] int64. Number of atoms of each structure."""
CHARGES: Final[str] = "charges"
"""[n_atoms] float, e. Atomic partial charges: the reference labels (``REF_charges``) in a labelled graph, the
predicted charges in the output of a model with a long-range term."""
FORCES_MASK: Final[str] = "forces_mask"
"""[n_atoms] float. 1 for atoms whose forces enter the loss and the metrics, 0 for fixed atoms (FixAtoms,
``move_mask`` false, ``fixed`` true: the frozen bottom layers of an OC20 slab)."""
CHARGES_WEIGHT: Final[str] = "charges_weight"
"""[n_graphs] float. Per-structure loss weight of the charge term (0 where no charge label exists)."""
TOTAL_CHARGE: Final[str] = "total_charge"
"""[n_graphs] float, e. Net charge of each structure (``atoms.info["charge"]``, 0 when absent); the predicted
charges of a long-range model sum to it."""

# ---- derived by a long-range model's forward (mlip.longrange.layer.plan_long_range), not read from data -----------
LR_KGRID: Final[str] = "lr_kgrid"
"""[n_graphs, K, 3] float (integer values). Half-space reciprocal-lattice coordinates m of each periodic structure
within the Ewald cutoff, zero-padded to the batch's largest K; k = m @ (2π cell^{-T})."""
LR_KVALID: Final[str] = "lr_kvalid"
"""[n_graphs, K] bool. Which rows of ``LR_KGRID`` are real (false on the padding and for free structures)."""
LR_FREE_PAIRS: Final[str] = "lr_free_pairs"
"""[2, P] int64. Every ordered pair (sender j, receiver i), i != j, within each free structure summed directly."""
LR_SLAB_HEIGHT: Final[str] = "lr_slab_height"
"""[n_graphs] float64, Å. Each slab's padded height along its plane normal (its thickness plus the vacuum gap of
mlip.longrange.slab); 0 for bulk cells and free structures."""

NODE_KEYS: Final[frozenset[str]] = frozenset({POSITIONS, ATOMIC_NUMBERS, FORCES, CHARGES, FORCES_MASK})
"""Keys concatenated along atoms when batching."""
GRAPH_KEYS: Final[frozenset[str]] = frozenset(
    {
        CELL,
        PBC,
        ENERGY,
        STRESS,
        VIRIALS,
        ENERGY_WEIGHT,
        FORCES_WEIGHT,
        STRESS_WEIGHT,
        CHARGES_WEIGHT,
        WEIGHT,
        N_ATOMS,
        TOTAL_CHARGE,
    }
)
"""Keys stacked along structures when batching."""
EDGE_KEYS: Final[frozenset[str]] = frozenset({EDGE_SHIFTS})
"""Keys concatenated along edges when batching (``EDGE_INDEX`` is offset by the atom count as well)."""
