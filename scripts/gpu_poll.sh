#!/usr/bin/env bash
# Wait on a scripts/gpu_session.sh job for at most SECONDS, then copy what it finished into OUT (the device
# call's $OUT): times.txt, the log's tail, the explain logs, and the packed run folders not fetched before.
#   bash scripts/gpu_poll.sh /tmp/gw 570 "$OUT"
set -u
work=$1; limit=$2; out=$3
t0=$SECONDS
while [ ! -f "$work/done" ] && [ $((SECONDS - t0)) -lt "$limit" ]; do sleep 5; done
cp "$work/times.txt" "$out/" 2>/dev/null
tail -c 60000 "$work/log" > "$out/log-tail.txt" 2>/dev/null
mkdir -p "$work/fetched"
for f in "$work"/explain-gpu-*.log "$work"/out/*.tar.xz; do
  [ -f "$f" ] || continue
  base=$(basename "$f")
  [ -f "$work/fetched/$base" ] && continue
  cp "$f" "$out/" && touch "$work/fetched/$base"
done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
[ -f "$work/done" ] && echo "JOB DONE" || echo "JOB RUNNING"
cat "$work/times.txt" 2>/dev/null
