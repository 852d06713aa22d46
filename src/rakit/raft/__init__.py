"""The pure Raft core: no I/O, no clock, no asyncio.  See ``core.py``."""
