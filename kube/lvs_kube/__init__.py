"""lvs_kube."""
