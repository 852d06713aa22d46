"""rakit.transport."""
