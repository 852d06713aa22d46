"""The cache's pure rules: no I/O, no clock (time comes in as arguments).

``versions`` (the hybrid Lamport clock that orders writes), ``lru`` (the
bounded store: count, bytes, TTL), ``coherence`` (the per-key MESI-like
table of who may serve what), ``contact`` (leases, fences, membership
generations: when a node may serve at all), ``messages`` (the wire format
between nodes) and ``checks`` (what a received batch must satisfy).  The
shell around them is ``rakit.cache.service`` and ``rakit.cache.peers``.
"""
