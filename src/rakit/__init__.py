"""rakit: a distributed synchronization service (Raft locks, Redis queue, coherent cache)."""

__version__ = "0.1.0"
