#!/usr/bin/env python3
"""Interleaved A/B runs on a shared, noisy machine: each round runs every
binary once, so load changes hit all of them alike. Reports medians of the
wall ns per record (the benchmark's ns/op, or Nexmark's seconds / events) and
of the CPU ns per record (user + sys of the process, from rusage), and,
per binary after the first, the median of its per-round ratios to the
first (paired rounds: load that drifts between rounds cancels out).

  scripts/ab-bench.py bench:REGEX:N ROUNDS A.test B.test ...
      go test binaries (go test -c), benchmark REGEX with -benchtime=Nx
      (a benchmark that reports records/s)
  scripts/ab-bench.py nexmark:QUERY:EVENTS ROUNDS strom-A strom-B ...
      strom binaries: strom nexmark --query QUERY --events EVENTS --json
"""
import json, re, resource, statistics, subprocess, sys

def run(cmd):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, capture_output=True, text=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return p.stdout + p.stderr, cpu

def main():
    mode, rounds, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    res = {}
    for r in range(rounds):
        for b in bins:
            if mode.startswith("bench:"):
                _, bench, n = mode.split(":")
                out, cpu = run([b, "-test.run", "^$", "-test.bench", bench, "-test.benchtime", n + "x"])
                m = re.search(r"\s(\d+)\s+([\d.]+) ns/op\s+([\d.]+) records/s", out)
                if not m:
                    print(out); sys.exit(1)
                res.setdefault(b, []).append((float(m.group(2)), cpu * 1e9 / int(n), float(m.group(3))))
            else:  # nexmark:q5:events
                _, q, ev = mode.split(":")
                out, cpu = run([b, "nexmark", "--query", q, "--events", ev, "--json"])
                j = json.loads(out.strip().splitlines()[-1])
                res.setdefault(b, []).append((j["seconds"] * 1e9 / int(ev), j["cpu_seconds"] * 1e9 / int(ev), j["events_per_second"]))
    for b in bins:
        xs = res[b]
        print(f"{mode} {b}: n={len(xs)} median wall {statistics.median(x[0] for x in xs):.1f} ns/rec, "
              f"median cpu {statistics.median(x[1] for x in xs):.1f} ns/rec, median {statistics.median(x[2] for x in xs)/1e6:.2f} M rec/s "
              f"(wall min {min(x[0] for x in xs):.1f}, cpu min {min(x[1] for x in xs):.1f})")
    # Paired: each round's ratio to the first binary's run of that round,
    # so load that drifts between rounds cancels out.
    a = res[bins[0]]
    for b in bins[1:]:
        rw = sorted(x[0] / y[0] for x, y in zip(res[b], a))
        rc = sorted(x[1] / y[1] for x, y in zip(res[b], a))
        print(f"{mode} {b} / {bins[0]}: median of per-round ratios wall {100 * (statistics.median(rw) - 1):+.1f} % "
              f"(quartiles {100 * (rw[len(rw) // 4] - 1):+.1f} … {100 * (rw[(3 * len(rw)) // 4] - 1):+.1f} %), "
              f"cpu {100 * (statistics.median(rc) - 1):+.1f} %")
main()
