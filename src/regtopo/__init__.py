"""regtopo: keep a fleet of OCI registries in the shape one topology declares."""

__version__ = "0.1.0"
