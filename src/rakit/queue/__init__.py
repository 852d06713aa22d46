"""rakit.queue."""
