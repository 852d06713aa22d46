"""rakit.cache."""
