#!/usr/bin/env bash
# Set up everything `speech` needs on a fresh Debian/Ubuntu machine, idempotently:
#   - system packages: PortAudio (microphone), espeak-ng (synthetic speech), PulseAudio + ALSA plugin
#     (virtual microphone for the tests);
#   - a virtual environment in .venv with the package (editable), its training extra and its test extras
#     (the base install, `pip install .`, only runs exported models; see README "Run a model anywhere").
# A second run checks and returns in a few seconds. Options: --no-system (skip apt), --python PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
SYSTEM=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-system) SYSTEM=0 ;;
    --python) PYTHON=$2; shift ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

PACKAGES=(libportaudio2 espeak-ng pulseaudio pulseaudio-utils libasound2-plugins)
if [ "$SYSTEM" = 1 ]; then
  missing=()
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
      echo "setup.sh: please install ${missing[*]} with your system's package manager" >&2
      exit 1
    fi
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup.sh: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

"$PYTHON" - <<'PY' || { echo "setup.sh: Python >= 3.11 is required ($PYTHON)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Reinstall only when the dependency list changed since the last successful install.
stamp=.venv/.speech-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c "import speech" 2>/dev/null; then
  echo "setup.sh: installing Python packages into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -e ".[train,dev]" > .venv/pip-install.log 2>&1 \
    || { tail -n 40 .venv/pip-install.log; echo "setup.sh: pip install failed (log: .venv/pip-install.log)" >&2; exit 1; }
  .venv/bin/python -c "import speech, torch, torchaudio, lightning, onnxruntime, sounddevice" \
    || { echo "setup.sh: the Python install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
echo "setup.sh: ready (.venv/bin/speech)"
