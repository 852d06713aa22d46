"""rakit.client."""
