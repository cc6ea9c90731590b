"""cka-sim: a terminal trainer for the Kubernetes administrator exam."""

__version__ = "0.1.0"
