"""``python -m gordon_manager.cli``: the same command as ``gordon-manager``."""

from gordon_manager.cli.main import main

main()
