#!/usr/bin/env bash
# Run `make test` with a CPU hog beside it, to show the integration tests wait on readiness and
# not on fixed deadlines (issue 15). Not part of CI: run it by hand, once, and say the result in
# the note. The hog is HOG_PROCS busy processes (default: twice the cores), each at nice 0, so
# the tests compete for every core; the load average is sampled while the tests run.
#
#   bash scripts/prove-under-load.sh                 # make test under 2x cores of hog
#   HOG_PROCS=8 bash scripts/prove-under-load.sh pytest   # another make target
#
# Exit status: make's. The log (test output, load samples, result) is prove-under-load.log.
set -uo pipefail
cd "$(dirname "$0")/.."

target=${1:-test}
cores=$(nproc)
procs=${HOG_PROCS:-$((cores * 2))}
log=${LOG:-prove-under-load.log}
: >"$log"

hogs=()
for _ in $(seq "$procs"); do
  python3 -c 'while True: pass' &
  hogs+=("$!")
done
(
  while sleep 30; do
    echo "load $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M:%S)" >>"$log"
  done
) &
sampler=$!
stop() {
  kill "${hogs[@]}" "$sampler" 2>/dev/null
  wait "${hogs[@]}" "$sampler" 2>/dev/null
}
trap stop EXIT INT TERM

echo "make $target with $procs CPU hogs on $cores cores, from $(date -u +%H:%M:%S)" | tee -a "$log"
start=$(date +%s)
make "$target" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
stop
trap - EXIT INT TERM
peak=$(grep -o '^load [0-9.]*' "$log" | cut -d' ' -f2 | sort -n | tail -1)
echo "make $target exited $rc after $(( $(date +%s) - start )) s; peak 1-min load ${peak:-n/a} ($procs hogs, $cores cores)" | tee -a "$log"
exit "$rc"
