"""Deployment: the exported ``.pt2`` artefact (:mod:`mlip.deploy.export`) and its runner
(:mod:`mlip.deploy.exported`), the LAMMPS ``fix external`` driver (:mod:`mlip.deploy.lammps`) and the ML-IAP class
(:mod:`mlip.deploy.lammps_mliap`, imported on its own: it needs LAMMPS's Python package)."""

from mlip.deploy.export import export_model, save_artefact
from mlip.deploy.exported import ExportedModel, read_metadata
from mlip.deploy.lammps import LAMMPSDriver, load_lammps

__all__ = ["ExportedModel", "LAMMPSDriver", "export_model", "load_lammps", "read_metadata", "save_artefact"]
