#!/usr/bin/env bash
# Sets up a fresh Debian machine with Python 3.11 for vdm: Debian packages for Manim
# and the terminal tests, torch 2.14.1 + torchvision 0.29.1, then vdm with its extras.
# Safe to run again: what is already there is kept.
set -euo pipefail
cd "$(dirname "$0")"
APT_PACKAGES="build-essential pkg-config python3-dev libcairo2-dev libpango1.0-dev \
texlive-latex-base texlive-latex-extra dvisvgm tmux ffmpeg"
missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
PIP="python3 -m pip"
$PIP install -q torch==2.14.1 torchvision==0.29.1
$PIP install -q -e '.[test,animations]'
