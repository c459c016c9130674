#!/usr/bin/env bash
# Compares two strom binaries on every Nexmark query, interleaved (A, B, A,
# B, ...) so that machine noise hits both alike, and prints the median
# events per CPU-second of each with the ratio B/A: the before/after tables
# in BENCHMARKS.md.
#   scripts/nexmark-compare.sh OLD_BINARY NEW_BINARY [EVENTS] [RUNS] [PARALLELISM]
# Build a binary of another commit with, for example:
#   git worktree add /tmp/base <commit> && (cd /tmp/base && go build -o /tmp/strom-base ./cmd/strom)
set -euo pipefail
a=$1 b=$2 events=${3:-2000000} runs=${4:-3} p=${5:-1}
echo "| query | P | A events per CPU-s (median of $runs) | B events per CPU-s | B/A |"
echo "|---|---:|---:|---:|---:|"
for q in q0 q1 q2 q3 q4 q5 q7 q8 q9 q11; do
  ra=() rb=()
  for _ in $(seq "$runs"); do
    ra+=("$("$a" nexmark --query "$q" --events "$events" --parallelism "$p" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["events_per_cpu_second"])')")
    rb+=("$("$b" nexmark --query "$q" --events "$events" --parallelism "$p" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["events_per_cpu_second"])')")
  done
  python3 - "$q" "$p" "${ra[*]}" "${rb[*]}" <<'PY'
import statistics, sys
q, p, a, b = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
ma, mb = statistics.median(a), statistics.median(b)
print("| %s | %s | %.2f M | %.2f M | %.2f |" % (q, p, ma / 1e6, mb / 1e6, mb / ma))
PY
done
