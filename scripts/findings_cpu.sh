#!/usr/bin/env bash
# The CPU runs behind docs/findings.md (about 25 minutes on 2 cores): the quickstart's three pipelines at 400
# passages, then `explain` of the calls the findings quote. Prints the run folder; every explain writes
# CELL/explain/ (explain.md, explain.json) and --against writes CELL/explain/against-<cell>.md.
#   bash scripts/findings_cpu.sh [OUTPUT_DIR]        (default results/findings-cpu)
set -euo pipefail
out=${1:-results/findings-cpu}
mh() { .venv/bin/python -m memharness "$@"; }
keep() {  # keep CELL NAME: a copy of the cell's explain.md and flame graph (the next explain of that cell
  # overwrites both), the copy's link pointing at the copied flame graph
  mkdir -p "$run/explains"
  sed "s#(host-flamegraph.html)#($2-flamegraph.html)#" "$run/cells/$1/explain/explain.md" > "$run/explains/$2.md"
  [ -f "$run/cells/$1/explain/host-flamegraph.html" ] && \
    cp "$run/cells/$1/explain/host-flamegraph.html" "$run/explains/$2-flamegraph.html"
  [ -f "$run/cells/$1/explain/against-$3.md" ] && cp "$run/cells/$1/explain/against-$3.md" "$run/explains/$2-against.md"
  return 0
}
scenario=$(mktemp --suffix=.yaml)
sed "s#^output: .*#output: $out#" scenarios/quickstart.yaml > "$scenario"
mh run "$scenario" --sizes 400
run=$(ls -1dt "$out"/quickstart/*/ | head -1)
echo "RUN=$run"
# Q3/Q4: what ColBERT's and RAGatouille's Indexer.index find alive at entry, and leave behind, side by side
mh explain "$run" colbert__400__r0 --target colbert.indexer.Indexer.index --at-entry --retained \
  --against ragatouille-nofaiss__400__r0
keep colbert__400__r0 q3-colbert-Indexer.index ragatouille-nofaiss__400__r0
keep ragatouille-nofaiss__400__r0 q3-ragatouille-Indexer.index none
# Q5: what RAGatouille holds when CollectionIndexer.index starts, and what that call leaves behind
mh explain "$run" ragatouille-nofaiss__400__r0 \
  --target colbert.indexing.collection_indexer.CollectionIndexer.index --at-entry --retained
keep ragatouille-nofaiss__400__r0 q5-ragatouille-CollectionIndexer.index none
# Q6 on the CPU: the sites of the host peak (the default call: compute_pytorch_kmeans)
mh explain "$run" ragatouille-nofaiss__400__r0
keep ragatouille-nofaiss__400__r0 q6-ragatouille-compute_pytorch_kmeans none
mh report "$run" > /dev/null
echo "DONE $run"
