"""lvs_apiserver."""
