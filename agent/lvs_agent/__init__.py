"""lvs_agent."""
