"""rakit.storage."""
