#!/usr/bin/env bash
# One GPU session's experiments as one background job on the device machine, polled by scripts/gpu_poll.sh
# (a device call lasts at most 10 minutes; the job outlives it because it runs in its own session):
#
#   mkdir -p /tmp/gw && setsid nohup bash scripts/gpu_session.sh /tmp/gw STEP... >/tmp/gw/log 2>&1 &
#
# STEP is one of
#   explain-kmeans        RAGatouille use_faiss=false at 10k, 25k and 50k, then `explain --gpu` (default call)
#                         of each cell: how fast_pytorch_kmeans' allocation grows with size (docs/findings.md)
#   cell:PIPELINE@SIZE    one cell of scenarios/genomics-gpu.yaml (e.g. cell:ragatouille-faiss@500k)
#                         (RUN_ARGS: more `memharness run` options for each cell, e.g. --no-report)
# WORK/times.txt logs each step (start, wall seconds, exit code); WORK/out/ gets each run folder packed
# without index artifacts (cells/*/work) and without explain's raw captures (capture/, rerun/), and once
# torch-extensions.tar.xz: colbert-ai's C++ extensions as compiled there (77-190 s on a fresh machine); saved
# as .sites/torch-extensions.tar.xz and carried, scripts/gpu_run.sh unpacks it and the compile is skipped.
# Needs .sites/site-colbert.tar.xz and .sites/site-rag.tar.xz (../shared/gpu/make-sites.sh .sites; carry them
# as files, site-memray.tar.xz only where a host explain runs) and .gpu/minilm (python -m memharness.models
# export-tokenizer .gpu/minilm) carried with the working tree.
set -uo pipefail
work=$1; shift
mkdir -p "$work/out"
echo $$ > "$work/pid"  # the job's process group (setsid made it the leader): scripts/gpu_stop.sh stops it
export SITE=/tmp/site RAG_SITE=/tmp/site-rag MEMRAY_SITE=/tmp/site-memray
if [ -f .sites/site-memray.tar.xz ]; then  # memray: only for host explains (--gpu alone does not need it)
  mkdir -p "$MEMRAY_SITE" && tar -xJf .sites/site-memray.tar.xz -C "$MEMRAY_SITE"
fi
export SCENARIO=scenarios/genomics-gpu.yaml
# the cache and the extensions folder scripts/gpu_run.sh would choose, set here once: explain and
# pack_extensions below use the same folders as the cells
export MEMHARNESS_CACHE=${MEMHARNESS_CACHE:-/tmp/memharness-cache}
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$MEMHARNESS_CACHE/torch_extensions}
export GPU_RUN_PACK=0  # pack() below packs each run once (scripts/gpu_run.sh would pack it too)

log() { echo "$*" | tee -a "$work/times.txt"; }

newest_run() { ls -1dt results/genomics-gpu/*/ | head -1; }

pack() {  # pack RUN_DIR NAME (written aside and renamed: scripts/gpu_poll.sh fetches whole tarballs only)
  tar -cJf "$work/out/$2.run.tar.xz.part" --exclude='cells/*/work' --exclude='cells/*/explain/capture' \
    --exclude='cells/*/explain/rerun' --exclude='*.pickle' -C "$(dirname "$1")" "$(basename "$1")" &&
    mv "$work/out/$2.run.tar.xz.part" "$work/out/$2.run.tar.xz"
}

step() {  # step NAME COMMAND...
  local name=$1; shift
  log "$name start $(date -u +%FT%TZ)"
  local t0=$SECONDS
  "$@"
  local rc=$?
  log "$name rc=$rc wall=$((SECONDS - t0)) s"
  return $rc
}

explain_kmeans() {
  step run-rag-nofaiss-10k-25k-50k bash scripts/gpu_run.sh "$SCENARIO" "$work/rag" \
    --pipelines ragatouille-nofaiss --sizes 10k,25k,50k
  local run; run=$(newest_run)
  echo "RUN=$run" >> "$work/times.txt"
  for size in 10k 25k 50k; do
    step "explain-gpu-$size" env PYTHONPATH="$MEMRAY_SITE:$RAG_SITE:$SITE:$PWD" HF_HUB_OFFLINE=1 \
      python3 -m memharness explain "$run" "ragatouille-nofaiss__${size}__r0" --gpu \
      > "$work/explain-gpu-$size.log" 2>&1
  done
  env PYTHONPATH="$PWD" python3 -m memharness report "$run" > /dev/null 2>&1
  pack "$run" rag-nofaiss-10k-25k-50k
}

pack_extensions() {  # colbert-ai's compiled extensions, once per job, for the next session to carry
  bash scripts/gpu_extensions.sh pack "$TORCH_EXTENSIONS_DIR" "$work/out/torch-extensions.tar.xz"
}

one_cell() {  # one_cell PIPELINE SIZE (the extensions are packed before the run: a poll returns on the run)
  step "cell-$1-$2" bash scripts/gpu_run.sh "$SCENARIO" "$work/cell-$1-$2" --pipelines "$1" --sizes "$2" \
    ${RUN_ARGS:-}  # e.g. RUN_ARGS=--no-report: merge_into_sample.sh renders here anyway
  pack_extensions
  pack "$(newest_run)" "$1-$2"
}

for s in "$@"; do
  case $s in
    explain-kmeans) explain_kmeans ;;
    cell:*@*) p=${s#cell:}; one_cell "${p%@*}" "${p#*@}" ;;
    *) log "unknown step $s" ;;
  esac
done
log "ALLDONE $(date -u +%FT%TZ)"
touch "$work/done"
