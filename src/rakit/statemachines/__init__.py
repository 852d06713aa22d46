"""rakit.statemachines."""
