"""gordon-manager: control plane and backend-for-frontend of the Gordon trading system."""

from gordon_manager.version import __version__

__all__ = ["__version__"]
