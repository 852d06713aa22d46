"""The ``corrupt`` nemesis's checker: a node never starts on a log damaged in the middle.

Each ``corrupt`` fault records whether the damaged node, started again,
refused (``refused``: true, its one-line reason in ``message``).  A node
that started anyway would serve having silently dropped entries it
acknowledged (and maybe the vote it gave): a violation.
"""

from __future__ import annotations

from collections.abc import Sequence

from rakit.chaos.checkers._common import Findings
from rakit.chaos.history import Fault, Verdict


def check_disk(faults: Sequence[Fault]) -> Verdict:
    findings = Findings()
    damaged = refused = 0
    for fault in faults:
        if fault.nemesis != "corrupt" or fault.detail.get("damaged_at") is None:
            continue
        damaged += 1
        node = ",".join(fault.nodes)
        if fault.detail.get("refused") is True:
            refused += 1
        else:
            findings.add(
                "silent-damage",
                f"{node} started on a log damaged at byte {fault.detail['damaged_at']} instead of refusing",
            )
    return Verdict("disk", findings.lines(), {"damaged": damaged, "refused": refused})
