"""rakit.node."""
