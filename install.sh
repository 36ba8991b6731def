#!/usr/bin/env bash
# Sets up a fresh Debian or Ubuntu machine for vdm: the Debian packages Manim and the
# terminal tests need, then a virtual environment in the checkout (.venv) holding
# torch 2.14.1 + torchvision 0.29.1 and vdm with its extras.
#
# A virtual environment, because Debian's own python3 refuses `pip install` outside one
# (PEP 668, "externally-managed-environment"). PYTHON=/path/to/python3 picks the
# interpreter that builds it (default: python3 on PATH).
# Safe to run again: what is already there is kept, and an up-to-date .venv is not touched.
#
# VDM_NO_LATEX=1: for a machine that only trains and samples (a GPU machine): no LaTeX, none of
# Manim's Debian packages (cairo, pango, ffmpeg) nor the animations extra, no reveal.js from npm,
# no Chromium. Unset (the default), everything is installed.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV=.venv
NO_LATEX="${VDM_NO_LATEX:-0}"

APT_PACKAGES="build-essential pkg-config python3-dev libcairo2-dev libpango1.0-dev \
texlive-latex-base texlive-latex-extra dvisvgm tmux ffmpeg"
EXTRAS="test,animations"
if [ "$NO_LATEX" = 1 ]; then
  APT_PACKAGES="build-essential pkg-config python3-dev tmux"
  EXTRAS="test"
fi
# Debian splits venv (and the ensurepip it needs) out of python3: without it `python3 -m venv` fails.
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || APT_PACKAGES="$APT_PACKAGES python3-venv"
missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "install.sh: installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# A .venv whose interpreter no longer runs (its python was removed or moved) is made again.
if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  rm -rf "$VENV"
  echo "install.sh: creating $VENV with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$PYTHON" -m venv "$VENV"
fi

# The stamp holds what the last complete install was made from; the same inputs skip pip.
stamp="$VENV/.vdm-installed"
want="$(cat pyproject.toml install.sh | sha256sum | cut -d' ' -f1)"
[ "$NO_LATEX" != 1 ] || want="$want-no-latex"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  PIP="$VENV/bin/python -m pip"
  $PIP install -q torch==2.14.1 torchvision==0.29.1
  $PIP install -q -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
  echo "install.sh: done; run vdm as $VENV/bin/vdm"
fi

# -- Lecture slides: reveal.js for `vdm slides`' offline HTML, and Chromium to check it --------
# reveal.js comes from npm into .venv/reveal (the HTML copies its dist/, so no CDN is needed at show
# time); Debian's chromium takes the screenshot the slide tests look at. Both are optional: without
# them `vdm slides` names what is missing and those tests skip. Each step runs only when its result
# is missing, so running install.sh again changes nothing.
if [ "$NO_LATEX" = 1 ]; then
  echo "install.sh: VDM_NO_LATEX=1: no LaTeX, Manim, reveal.js or Chromium"
  exit 0
fi
REVEAL_VERSION=6.0.1  # animations/render.py REVEAL_VERSION
if [ ! -f "$VENV/reveal/node_modules/reveal.js/dist/reveal.js" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "install.sh: installing reveal.js $REVEAL_VERSION from npm into $VENV/reveal"
    npm install --silent --no-audit --no-fund --prefix "$VENV/reveal" "reveal.js@$REVEAL_VERSION" \
      || echo "install.sh: npm could not install reveal.js; vdm slides will write no HTML until it does"
  else
    echo "install.sh: npm not found; vdm slides needs reveal.js (npm install --prefix $VENV/reveal reveal.js@$REVEAL_VERSION)"
  fi
fi
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
    || echo "install.sh: chromium not installed; the HTML screenshot test will skip"
fi
