#!/usr/bin/env bash
# Run a scenario on an offline GPU host in one go, from the repository root there:
#
#   bash scripts/gpu_run.sh SCENARIO.yaml OUT_DIR [memharness run options, e.g. --sizes 100k --pipelines colbert]
#
# 1. packages the host lacks, either
#    - $SITES (default .sites): the two tarballs of ../shared/gpu/make-sites.sh $SITES, unpacked into
#      $SITE (default /tmp/site: the ColBERT set, on PYTHONPATH for every cell) and $RAG_SITE (default
#      /tmp/site-rag: RAGatouille's set, put ahead of $SITE by scripts/gpu_python_rag, the `python:` of the
#      ragatouille pipelines in scenarios/genomics-gpu.yaml), or
#    - $WHL (default .whl): wheels (../shared/gpu/fetch-wheels.sh .whl plus pydantic's; ColBERT only),
#      installed into $SITE;
# 2. uses the MiniLM tokenizer files from $MEMHARNESS_MINILM_DIR (default .gpu/minilm; export them here with
#    `python -m memharness.models export-tokenizer .gpu/minilm`) to build the builtin checkpoint and the
#    synthetic corpus on the host;
# 3. runs the scenario (report included), then packs the run folder without the index artifacts
#    (cells/*/work) into OUT_DIR/run.tar.xz. Every cell shares one TORCH_EXTENSIONS_DIR, so colbert's
#    extensions compile once per host, not once per interpreter.
set -euo pipefail
scenario=$1; out=$2; shift 2
WHL=${WHL:-.whl}
SITES=${SITES:-.sites}
export SITE=${SITE:-/tmp/site} RAG_SITE=${RAG_SITE:-/tmp/site-rag}
if [ -f "$SITES/site-colbert.tar.xz" ]; then
  mkdir -p "$SITE" && tar -xJf "$SITES/site-colbert.tar.xz" -C "$SITE"
  if [ -f "$SITES/site-rag.tar.xz" ]; then
    mkdir -p "$RAG_SITE" && tar -xJf "$SITES/site-rag.tar.xz" -C "$RAG_SITE"
  fi
  echo "gpu_run: unpacked $SITES into $SITE$([ -f "$SITES/site-rag.tar.xz" ] && echo " and $RAG_SITE")"
elif [ -d "$WHL" ] && ls "$WHL"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHL"/*.whl
fi
if [ -d "$SITE" ]; then
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD:$PYTHONPATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MEMHARNESS_MINILM_DIR=${MEMHARNESS_MINILM_DIR:-$PWD/.gpu/minilm}
export MEMHARNESS_CACHE=${MEMHARNESS_CACHE:-/tmp/memharness-cache}
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$MEMHARNESS_CACHE/torch_extensions}
# colbert-ai's extensions as an earlier session compiled them (scripts/gpu_session.sh packs them), if carried
bash scripts/gpu_extensions.sh unpack "$SITES/torch-extensions.tar.xz" "$TORCH_EXTENSIONS_DIR" ||
  echo "gpu_run: $SITES/torch-extensions.tar.xz not unpacked: the extensions compile as usual"
mkdir -p "$out"
set +e
python3 -m memharness run "$scenario" "$@"
code=$?
set -e
name=$(python3 -c "import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))['name'])" "$scenario")
output=$(python3 -c "import sys,yaml; print(yaml.safe_load(open(sys.argv[1])).get('output','results'))" "$scenario")
run=$(ls -1dt "$output/$name"/*/ | head -1)
if [ "${GPU_RUN_PACK:-1}" = 0 ]; then  # scripts/gpu_session.sh packs it itself
  echo "run folder: $run (exit $code)"
else
  tar -cJf "$out/run.tar.xz" --exclude='cells/*/work' -C "$(dirname "$run")" "$(basename "$run")"
  echo "run folder: $run (exit $code); packed into $out/run.tar.xz ($(du -h "$out/run.tar.xz" | cut -f1))"
fi
exit $code
