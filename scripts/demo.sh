#!/usr/bin/env bash
# Set up (if needed) and run the main job: the small end-to-end demo (`vla quickstart`):
# collect MetaWorld demonstrations, train a policy, evaluate it and write an HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export MUJOCO_GL=egl HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
vla quickstart --out "${1:-runs/quickstart}"
