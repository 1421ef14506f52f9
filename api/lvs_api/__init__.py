"""lvs_api."""
