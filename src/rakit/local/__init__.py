"""Local processes: Redis, rakit nodes, whole clusters on loopback, and ``rakit up``."""
