#!/usr/bin/env bash
# Run the cost benchmark on a lent GPU machine (the device tool), from the repository root,
# with the bundle of fetch_bundle.sh carried in .whl/:
#
#   bash benchmarks/device/run_cuda.sh            # writes $OUT/cuda.{json,md}, $OUT/log
#
# It installs the wheels into a target folder (no index), builds mmcv 2.1.0 with its CPU ops
# against the machine's torch (mmsegmentation imports mmcv.ops; the benchmark uses none of its
# CUDA ops), and runs benchmarks/step_cost.py on CUDA. Extra arguments go to step_cost.py.
#
# Environment overrides: PYTHON (default python3), BUNDLE (default .whl), SITE (default
# /tmp/site), OUT (required: the folder whose files come back), DEVICE (default cuda).
set -euo pipefail

PY="${PYTHON:-python3}"
BUNDLE="${BUNDLE:-.whl}"
SITE="${SITE:-/tmp/site}"
OUT="${OUT:?set OUT to the folder whose files come back}"
DEVICE="${DEVICE:-cuda}"
say() { printf '[device] %s\n' "$*"; }

[ -f benchmarks/step_cost.py ] || { say "run this from the repository root"; exit 2; }
ls "$BUNDLE"/mmcv-2.1.0.tar.gz >/dev/null || { say "no bundle in $BUNDLE: run fetch_bundle.sh here first"; exit 2; }
say "$("$PY" -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.cuda.is_available()}")')"

start=$SECONDS
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$BUNDLE"/*.whl
export PYTHONPATH="$SITE:$PWD"

if ! "$PY" -c 'import mmcv.ops' >/dev/null 2>&1; then
  build="$(mktemp -d)"
  include="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  if [ ! -f "$include/Python.h" ]; then
    headers="$BUNDLE/python$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-include.tar.gz"
    [ -f "$headers" ] || { say "no Python.h in $include and no $headers in the bundle"; exit 1; }
    mkdir -p "$build/include" && tar -xzf "$headers" -C "$build/include"
    export CPATH="$(ls -d "$build"/include/*)${CPATH:+:$CPATH}"
    say "using the bundled Python headers ($CPATH)"
  fi
  tar -xzf "$BUNDLE"/mmcv-2.1.0.tar.gz -C "$build"
  # torch >= 2.10 headers need C++20; mmcv's setup.py hard-codes -std=c++17.
  sed -i "s/extra_compile_args\['cxx'\] = \['-std=c++17'\]/extra_compile_args['cxx'] = ['-std=c++20']/" \
    "$build/mmcv-2.1.0/setup.py"
  say "building mmcv 2.1.0 with CPU ops ($(nproc) cores; log: $OUT/mmcv-build.log)"
  if ! (cd "$build/mmcv-2.1.0" && CUDA_VISIBLE_DEVICES= FORCE_CUDA=0 MMCV_WITH_OPS=1 \
        MAX_JOBS="$(nproc)" CFLAGS=-g0 CXXFLAGS=-g0 "$PY" -m pip install --no-index --no-deps \
        --no-build-isolation --no-compile --target "$SITE" . >"$OUT/mmcv-build.log" 2>&1); then
    grep -m 5 -E 'error:|Error' "$OUT/mmcv-build.log" || true
    say "building mmcv failed"; exit 1
  fi
fi
"$PY" -c 'import mmda_vpt, mmcv.ops, mmseg.models, mmpretrain.models'
say "stack ready in $((SECONDS - start)) s"

set -o pipefail
PYTHONUNBUFFERED=1 "$PY" -m benchmarks.step_cost --device "$DEVICE" --out "$OUT/$DEVICE" "$@" 2>&1 \
  | grep -v -e 'pkg_resources' -e '_bootstrap._exec' | tee "$OUT/log"
