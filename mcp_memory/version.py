"""The package's version, in a module of its own so that any module can read it without importing the package's
public API (``mcp_memory/__init__.py`` imports the runtime, which imports most of the package)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
