#!/usr/bin/env bash
# Wait on a scripts/gpu_session.sh job for at most SECONDS, then copy what it finished into OUT (the device
# call's $OUT): times.txt, the log's tail, the explain logs, and the packed run folders not fetched before.
# Returns early when the job is done or a step packed a run folder (*.run.tar.xz) not fetched yet, so each finished cell
# comes back with the next call even while later steps run.
#   bash scripts/gpu_poll.sh /tmp/gw 570 "$OUT"
set -u
work=$1; limit=$2; out=$3
mkdir -p "$work/fetched"
unfetched() {
  for f in "$work"/explain-gpu-*.log "$work"/out/*.tar.xz; do
    [ -f "$f" ] && [ ! -f "$work/fetched/$(basename "$f")" ] && echo "$f"
  done
}
t0=$SECONDS
while [ ! -f "$work/done" ] && [ -z "$(unfetched | grep '\.run\.tar\.xz$')" ] && [ $((SECONDS - t0)) -lt "$limit" ]; do
  sleep 5
done
sleep 1  # let the step's closing line reach times.txt
cp "$work/times.txt" "$out/" 2>/dev/null
tail -c 60000 "$work/log" > "$out/log-tail.txt" 2>/dev/null
for f in $(unfetched); do
  cp "$f" "$out/" && touch "$work/fetched/$(basename "$f")"
done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
[ -f "$work/done" ] && echo "JOB DONE" || echo "JOB RUNNING"
cat "$work/times.txt" 2>/dev/null
grep -a ': cell ' "$work/log" 2>/dev/null | tail -n 1  # the running cell's last progress line (elapsed, RSS)
