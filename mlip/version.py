"""The package version (PEP 440), in a module of its own so that any layer can read it without importing the
package's top-level conveniences (which reach the calculators)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
