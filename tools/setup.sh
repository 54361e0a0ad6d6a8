#!/bin/sh
# Installs akt's build and test dependencies (Debian 12; clang and its
# libFuzzer runtime for tools/fuzz.sh) and builds it.
# Usage: tools/setup.sh [BUILD_DIR]   (default: build)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}

pkgs="meson ninja-build gcc pkg-config libopenblas-dev libhdf5-dev hdf5-tools libyaml-dev
      libcmocka-dev python3-h5py python3-numpy python3-matplotlib python3-pandas python3-yaml
      python3-torch python3-onnx clang libclang-rt-14-dev"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
fi

if [ -d "$build" ]; then
    meson setup --reconfigure "$build"
else
    meson setup "$build"
fi
meson compile -C "$build"
