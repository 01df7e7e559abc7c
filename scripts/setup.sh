#!/usr/bin/env bash
# Set up a fresh machine for vla: Debian packages for offscreen rendering (and Chromium for the
# viewer test), a virtual env in .venv, torch (CPU build) before anything that depends on it,
# then the package with its dev extras. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libegl1 libegl-mesa0 libgl1 libopengl0 libgl1-mesa-dri libgles2 libglx-mesa0 chromium chromium-driver)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
if ! python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  echo "[setup] installing torch 2.13.0 (CPU build)"
  pip install -q --upgrade pip
  pip install -q torch==2.13.0
fi
stamp=.venv/.vla-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing vla and its dependencies"
  pip install -q -e '.[dev]'
  touch "$stamp"
fi
# robosuite 1.5.2 without its deps: mink==0.0.5 pins numpy<2 (its imported deps come with the dev extra)
if ! python -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('robosuite') == '1.5.2' else 1)" 2>/dev/null; then
  echo "[setup] installing robosuite 1.5.2 (--no-deps)"
  pip install -q --no-deps robosuite==1.5.2
fi
# openpi's websocket client, for the wire-compatibility test: it pins numpy < 2, so without its deps
if ! python -c "import openpi_client.websocket_client_policy" 2>/dev/null; then
  echo "[setup] installing openpi-client 0.1.2 (--no-deps)"
  pip install -q --no-deps openpi-client==0.1.2
fi
echo "[setup] ready: $(python -c 'import vla, torch; print("vla", vla.__version__, "torch", torch.__version__)')"
