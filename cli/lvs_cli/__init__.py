"""lvs_cli."""
