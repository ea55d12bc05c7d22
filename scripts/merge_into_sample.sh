#!/usr/bin/env bash
# Merge run folders packed by scripts/gpu_session.sh (NAME.run.tar.xz) into a committed sample run folder,
# in the form samples are committed: cells without work/, timelines xz-compressed, no .lock, no PNGs (the
# report's index.html embeds its charts), the report re-rendered. The sample keeps its name (its run_id).
#   bash scripts/merge_into_sample.sh results/samples/genomics-gpu-matrix /work/.device/8/*.run.tar.xz
# Then: scripts/seed_table.py --write, and the tests (test_samples checks the committed report).
set -euo pipefail
sample=${1%/}; shift
[ -f "$sample/manifest.json" ] || { echo "$sample is not a run folder" >&2; exit 2; }
[ $# -gt 0 ] || { echo "give one or more NAME.run.tar.xz" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs=()
for t in "$@"; do
  d="$tmp/unpacked/$(basename "$t" .run.tar.xz)"
  mkdir -p "$d" && tar -xJf "$t" -C "$d"
  found=("$d"/*/)
  [ ${#found[@]} -eq 1 ] || { echo "$t: expected one run folder inside, found ${#found[@]}" >&2; exit 2; }
  runs+=("${found[0]%/}")
done
merged="$tmp/merged/$(basename "$sample")"
.venv/bin/python -m memharness merge "$sample" "${runs[@]}" --output "$merged"
rm -rf "$merged/report" "$merged/.lock"
find "$merged" -name .lock -delete
find "$merged/cells" -name '*.png' -delete
for f in "$merged"/cells/*/timeline.bin "$merged"/cells/*/timeline_mem.bin; do
  if [ -f "$f" ]; then xz -9 "$f"; fi
done
.venv/bin/python -m memharness report "$merged"
find "$merged/report" -name '*.png' -delete
rm -rf "$sample" && cp -r "$merged" "$sample"
echo "merged into $sample: $(ls "$sample/cells" | wc -l) cells"
