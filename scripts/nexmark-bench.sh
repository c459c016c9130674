#!/usr/bin/env bash
# Runs every Nexmark query at parallelism 1 and 2 with the COST baseline and
# prints a Markdown table: the BENCHMARKS.md figures.
#   scripts/nexmark-bench.sh [EVENTS] [extra strom nexmark flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-2000000}
shift || true
bin=$(mktemp -d)/strom
go build -o "$bin" ./cmd/strom
echo "| query | P | events/s | events per CPU-s | baseline events/s | COST ratio | rows |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for q in q0 q1 q2 q3 q4 q5 q7 q8 q9 q11; do
  for p in 1 2; do
    "$bin" nexmark --query "$q" --events "$events" --parallelism "$p" --json --baseline "$@" |
      python3 -c 'import json,sys
d=json.loads(sys.stdin.read())
m=lambda x: "%.2f M" % (x/1e6)
print("| %s | %d | %s | %s | %s | %.2f | %d |" % (d["query"], d["parallelism"], m(d["events_per_second"]), m(d["events_per_cpu_second"]), m(d["baseline_events_per_second"]), d["cost_ratio"], d["rows"]))'
  done
done
