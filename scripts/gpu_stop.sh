#!/usr/bin/env bash
# Stop a scripts/gpu_session.sh job: SIGTERM to its process group (the pid it wrote to WORK/pid), so the
# `memharness run` inside stops its cell and marks the run resumable; SIGKILL after 60 s if still there.
# No `pgrep -f PATTERN`: on the device machine that matches the calling command's own line and kills it.
#   bash scripts/gpu_stop.sh /tmp/gw
set -u
work=$1
[ -f "$work/pid" ] || { echo "$work/pid: no job recorded" >&2; exit 2; }
pgid=$(cat "$work/pid")
alive() {  # a process of the group that is not a zombie (an unreaped leader does not count)
  ps -eo pgid=,stat= | awk -v g="$pgid" '$1 == g && $2 !~ /^Z/ {found = 1} END {exit !found}'
}
alive || { echo "job $pgid: already ended"; exit 0; }
kill -TERM -- "-$pgid"
for _ in $(seq 120); do
  alive || { echo "job $pgid: stopped"; exit 0; }
  sleep 0.5
done
kill -KILL -- "-$pgid" 2>/dev/null
echo "job $pgid: killed after 60 s"
