"""lvs_controller."""
