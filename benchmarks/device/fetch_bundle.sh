#!/usr/bin/env bash
# Fetch, here, what the cost benchmark needs on a lent GPU machine that has Python 3.12 and
# torch but not the OpenMMLab stack, and no package index: pure-Python wheels for Python 3.12
# and mmcv 2.1.0's source (built there by run_cuda.sh). They land in .whl/ (git-ignored), the
# folder the device tool carries (carry: [".whl"]).
#
# Environment overrides: PYTHON (default: the project's .venv, which has the torch that pip
# needs to read mmcv's setup.py, else python3), BUNDLE (default .whl in the repository).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
BUNDLE="${BUNDLE:-$ROOT/.whl}"
mkdir -p "$BUNDLE"

# The versions the project's own environment uses (requirements/runtime.txt and what pip
# resolved for it); setuptools < 70 for mmcv's setup.py (pkg_resources, build_ext).
WHEELS=(
  mmengine==0.10.7 mmpretrain==1.2.0 mmsegmentation==1.2.2
  addict==2.4.0 yapf==0.43.0 platformdirs==4.14.8 termcolor==3.3.0
  prettytable==3.18.0 wcwidth==0.9.4 ftfy==6.3.1 mat4py==0.6.0
  modelindex==0.0.2 model-index==0.1.11 ordered-set==4.1.0 importlib_metadata==10.2.0
  lazy-importer==0.1.0
  setuptools==69.5.1
)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$BUNDLE" "${WHEELS[@]}"
"$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 -d "$BUNDLE"
# The C headers of Python 3.12, in case the machine's interpreter was installed without them
# (building mmcv's ops needs Python.h); any 3.12.x has the same C API.
for py312 in ${PYTHON312:-} python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
  include="$("$py312" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)" \
    || continue
  if [ -f "$include/Python.h" ]; then
    tar -czf "$BUNDLE/python3.12-include.tar.gz" -C "$(dirname "$include")" "$(basename "$include")"
    break
  fi
done
printf '[bundle] %s\n' "$(ls "$BUNDLE" | wc -l) files, $(du -sh "$BUNDLE" | cut -f1), in $BUNDLE"
