#!/usr/bin/env bash
# The GPU path in one command, from the repository root of a fresh machine:
#
#   bash benchmarks/gpu_check.sh                  # on a CUDA machine: under 8 minutes on an H200
#   bash benchmarks/gpu_check.sh --dry-run        # the same steps on the CPU at tiny sizes (CI runs it)
#   bash benchmarks/gpu_check.sh --budget-s 420   # no step starts later than 420 s after this began
#
# The steps, their limits and the goals: benchmarks/gpu_check.py (--list, --help). The log goes to
# $OUT/gpu_check.log, the results to $OUT/gpu_check.json (a temporary folder when OUT is unset).
#
# Setup (timed; its seconds count against the budget), in this order:
#   1. an interpreter that already has what the steps import (torch, torchvision, numpy, safetensors,
#      pillow, tqdm, imageio; nvidia-ml-py for the panel step): $PYTHON, else .venv/bin/python,
#      else python3. A GPU machine's image usually has one (its python3 with torch): nothing is
#      installed, and vdm is imported from this checkout (PYTHONPATH), not pip-installed, so that
#      the image's own torch stays.
#   2. else wheels in .whl/ (carried to a machine without a registry): pip installs them, offline,
#      into a folder on PYTHONPATH.
#   3. else, with a registry in reach, `VDM_NO_LATEX=1 bash install.sh`: torch and vdm with its test
#      extra into .venv, without LaTeX, Manim, reveal.js or Chromium (minutes: torch is a large
#      download). VDM_GPU_CHECK_INSTALL=0 forbids it.
set -uo pipefail
cd "$(dirname "$0")/.."
T0="$(date +%s.%N)"
export PYTHONUNBUFFERED=1
OUT_DIR="${OUT:-}"
[ -n "$OUT_DIR" ] || OUT_DIR="$(mktemp -d -t vdm-gpu-check-XXXXXX)"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
NEED='import torch, torchvision, numpy, safetensors, PIL, tqdm, imageio'

has_all() { [ -n "$1" ] && command -v "$1" >/dev/null 2>&1 && "$1" -c "$NEED" >/dev/null 2>&1; }

main() {
  local py="" note="" status="ok"
  for cand in "${PYTHON:-}" .venv/bin/python python3; do
    if has_all "$cand"; then py="$cand"; note="nothing installed: $cand has torch"; break; fi
  done
  if [ -z "$py" ] && ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_check.sh: installing the wheels in .whl/ (offline) into /tmp/vdm-gpu-check-site"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/vdm-gpu-check-site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/vdm-gpu-check-site"
    if has_all python3; then py=python3; note="wheels from .whl/: $(ls .whl | tr '\n' ' ')"; fi
  fi
  if [ -z "$py" ] && [ "${VDM_GPU_CHECK_INSTALL:-1}" != 0 ]; then
    echo "gpu_check.sh: no interpreter with torch; running VDM_NO_LATEX=1 bash install.sh"
    local t1; t1="$(date +%s)"
    if VDM_NO_LATEX=1 bash install.sh && has_all .venv/bin/python; then
      py=.venv/bin/python; note="VDM_NO_LATEX=1 install.sh: $(( $(date +%s) - t1 )) s"
    else
      note="VDM_NO_LATEX=1 install.sh failed after $(( $(date +%s) - t1 )) s"
    fi
  fi
  if [ -z "$py" ]; then
    status="failed"; py="$(command -v python3 || true)"
    [ -n "$note" ] || note="no interpreter imports torch and nothing could be installed"
    if [ -z "$py" ]; then echo "gpu_check.sh: setup failed: $note; no python3 either"; return 1; fi
  fi
  local setup_s; setup_s="$(python3 -c "import time; print(round(time.time() - $T0, 1))" 2>/dev/null || echo 0)"
  echo "gpu_check.sh: setup $status in ${setup_s} s: $note"
  "$py" -c 'import sys, torch; print(f"python {sys.version.split()[0]} ({sys.executable}), torch {torch.__version__}, CUDA {torch.cuda.is_available()}" + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))' 2>&1 || true
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$py" benchmarks/gpu_check.py --out "$OUT_DIR" --started-at "$T0" --setup-s "$setup_s" \
    --setup-status "$status" --setup-note "$note" "$@"
}

main "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
exit "${PIPESTATUS[0]}"
