#!/bin/bash
# User-space instructions per echoed line of two echo_server builds, counted with
# callgrind (docs/benchmarks.md, "Echo on the generic loop"). Deterministic: no
# timing is involved, so it settles what this VM's noisy clocks cannot.
#
#   bench/scripts/instructions_per_line.sh OLD_BIN NEW_BIN
#
# Each binary is an `echo_server` example (e.g. built with `cargo build --release
# --example echo_server` in a worktree of the old commit and in this one). Needs
# valgrind and python3; runs on 127.0.0.1 only.
set -euo pipefail
OLD=$1
NEW=$2
HERE=$(cd "$(dirname "$0")" && pwd)

# Instructions of a server process that served N lines DEPTH deep on CONNS
# connections (one after the other), and was then stopped with SIGTERM.
count() {
  local bin=$1 mode=$2 n=$3 depth=$4 conns=$5 out
  out=$(mktemp -d)
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" "$mode" 127.0.0.1:0 \
    >"$out/stdout" 2>"$out/stderr" &
  local vpid=$!
  for _ in $(seq 1 200); do
    grep -q "listening on" "$out/stdout" 2>/dev/null && break
    sleep 0.1
  done
  local port
  port=$(head -1 "$out/stdout" | awk '{print $4}' | cut -d: -f2)
  timeout 300 python3 "$HERE/fixed_load.py" 127.0.0.1 "$port" "$n" "$depth" "$conns"
  kill -TERM "$vpid"
  wait "$vpid" 2>/dev/null || true
  grep -E "^(summary|totals):" "$out/cg" | head -1 | awk '{print $2}'
  rm -rf "$out"
}

echo "| mode | depth | conns | old | new | new ÷ old |"
echo "|---|--:|--:|--:|--:|--:|"
for mode in --bytes --lines; do
  for depth in 1 8 32; do
    for conns in 1 50; do
      if [ "$conns" = 1 ]; then n1=2000 n2=12000; else n1=40 n2=240; fi
      lines=$(((n2 - n1) * conns))
      per=()
      for bin in "$OLD" "$NEW"; do
        a=$(count "$bin" "$mode" "$n1" "$depth" "$conns")
        b=$(count "$bin" "$mode" "$n2" "$depth" "$conns")
        per+=("$(python3 -c "print(round(($b - $a) / $lines))")")
      done
      echo "| ${mode#--} | $depth | $conns | ${per[0]} | ${per[1]} | $(python3 -c "print(round(${per[1]} / ${per[0]}, 2))") |"
    done
  done
done
