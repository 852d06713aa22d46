"""Chaos suite: real nodes in network namespaces, faults, recorded histories, checkers.

``history`` holds the record format; ``checkers`` the pure verdicts on a
history; ``netns`` the test hosts; ``nemesis`` the seeded fault schedule;
``workloads`` the recording clients; ``plot`` the timeline; ``run`` the one
command (``rakit chaos``) that ties them together.
"""
