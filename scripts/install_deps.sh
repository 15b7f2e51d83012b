#!/usr/bin/env bash
# Installs exactly the Debian packages Tessera needs to build and test (run as root, or with
# sudo available). CUDA is optional: when /usr/local/cuda/bin/nvcc exists the CUDA backend
# is built too.
set -euo pipefail

packages=(
  build-essential cmake git
  libeigen3-dev
  libdnnl-dev
  libopenmpi-dev openmpi-bin
  libspdlog-dev libfmt-dev
  libyaml-cpp-dev
  libcli11-dev
  libonnx-dev libprotobuf-dev
  libcpp-httplib-dev prometheus-cpp-dev
  nlohmann-json3-dev
  libsentencepiece-dev
  catch2
  pybind11-dev python3-dev
  iproute2
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install_deps: all packages present"
else
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python packages of the tests, for the python3 CMake finds: onnxruntime runs the exported
# ONNX model (tests/onnx), numpy and safetensors read Tessera's own logits. A no-op when present.
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet onnxruntime numpy safetensors
# torch, transformers, sentencepiece: the Hugging Face reference and interoperability tests
# (tests/reference/make_llama_fixtures.py, tests/interop, tests/tokenizer) and bench/.
# PyPI serves torch's CUDA build only (about 5 GiB with its nvidia-* wheels, minutes to download);
# it runs on the CPU all the same. torch is also checkpoint.pytorch_load's reference.
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet torch transformers sentencepiece
# matplotlib: scripts/plot_metrics.py (and plot_trace.py) and the docs tests that run them (tests/docs).
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet matplotlib
# openai: the official client that tests/serve/test_openai_client.py points at `tessera serve`.
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet openai
