"""rakit.http."""
