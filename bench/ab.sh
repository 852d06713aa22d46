#!/usr/bin/env bash
# A/B of two builds in one session: bench/raft_writes.py alternating A B A B, then bench/locks.py A B.
#   bash bench/ab.sh <base-rev> [raft_writes args...]     (A = base-rev, B = this checkout)
# Each side runs from its own tree (a temporary git worktree for A) with this checkout's .venv;
# compare each row's ratio to the etcd of the same run: the machine's speed drifts between runs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
base=${1:?usage: bench/ab.sh <base-rev> [raft_writes args...]}
shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--duration 6 --rounds 2)
wt=$(mktemp -d)
git -C "$here" worktree add -q --detach "$wt" "$base"
trap 'git -C "$here" worktree remove --force "$wt"' EXIT
py="$here/.venv/bin/python"
run() {  # side tree script args...
    local side=$1 tree=$2 script=$3
    shift 3
    echo "=== $side ($(git -C "$tree" rev-parse --short HEAD)) $script ==="
    (cd "$tree" && PYTHONPATH="$tree/src" timeout 1200 "$py" "bench/$script" "$@")
}
for side in A B A B; do
    if [ "$side" = A ]; then tree=$wt; else tree=$here; fi
    run "$side" "$tree" raft_writes.py "${args[@]}"
done
run A "$wt" locks.py
run B "$here" locks.py
