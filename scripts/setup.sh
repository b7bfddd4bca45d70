#!/usr/bin/env bash
# One set-up command: a fresh .venv with everything the project and its tests need.
# Order matters: torch==2.13.0 first (CPU wheel), then the requirements, then
# spacy-huggingface-hub without its typer<0.8 pin, then our registered code.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -r requirements.txt
.venv/bin/python -m pip install --quiet --no-deps spacy-huggingface-hub==0.0.10
.venv/bin/python -m pip install --quiet -e components
if [ "${1:-}" = "--gpu" ]; then
  .venv/bin/python -m pip install --quiet -r requirements-gpu.txt
fi
echo "set-up done: source .venv/bin/activate"
