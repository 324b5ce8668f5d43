#!/usr/bin/env bash
# Set up the project's virtual environment: torch, mmcv 2.1.0 with its compiled ops (built once
# and cached outside the repository), the OpenMMLab stack, openmim (the `mim` command, without
# its dependency chain) and mmda_vpt in editable mode.
#
# Environment overrides:
#   PYTHON              interpreter for the venv (default: python3.11, else python3)
#   VENV                venv path (default: .venv in the repository)
#   TORCH_SPEC          torch requirement (default: torch==2.14.1); set it to bring your own build
#   TORCHVISION_SPEC    torchvision requirement (default: torchvision==0.29.1)
#   MMCV_WHEEL          a prebuilt mmcv 2.1.x wheel to install instead of building one
#   MMDA_VPT_CACHE      cache folder for the built mmcv wheel (default: ~/.cache/mmda_vpt)
#   SKIP_TORCH=1        keep whatever torch/torchvision the venv already has
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1}"
TORCHVISION_SPEC="${TORCHVISION_SPEC:-torchvision==0.29.1}"
MMCV_VERSION=2.1.0
CACHE="${MMDA_VPT_CACHE:-$HOME/.cache/mmda_vpt}"
STAMP="$VENV/.mmda_vpt_setup_stamp"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ---- prerequisites --------------------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no Python interpreter '$PYTHON' found; install Python 3.11 or set PYTHON=..."
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 9) else 1)' \
  || die "$PYTHON is $("$PYTHON" -V 2>&1); mmda_vpt needs Python >= 3.9 (tested with 3.11)"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$PYTHON lacks the venv/ensurepip modules (on Debian: apt-get install python3-venv)"

# ---- virtual environment --------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
else
  say "using virtual environment $VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

# A stamp of everything that decides the install: when nothing changed, the setup is a no-op.
fingerprint="$(cat "$ROOT/setup.py" "$ROOT/requirements/"*.txt "$ROOT/tools/setup_env.sh" \
  | sha256sum | cut -c1-16)-${TORCH_SPEC}-${TORCHVISION_SPEC}-${MMCV_WHEEL:-}-${SKIP_TORCH:-0}"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$fingerprint" ] \
   && "$PY" -c 'import mmda_vpt, mmcv.ops, mmseg.models, mmpretrain.models, mim' >/dev/null 2>&1; then
  say "environment is up to date (delete $STAMP to force a reinstall)"
  exit 0
fi

# ---- torch ----------------------------------------------------------------------------------
if [ "${SKIP_TORCH:-0}" = 1 ]; then
  "$PY" -c 'import torch, torchvision' 2>/dev/null || die "SKIP_TORCH=1 but the venv has no torch/torchvision"
  say "keeping torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  say "installing $TORCH_SPEC $TORCHVISION_SPEC"
  "${PIP[@]}" install -q "$TORCH_SPEC" "$TORCHVISION_SPEC" 2> >(grep -v 'is ignored' >&2) \
    || die "could not install $TORCH_SPEC $TORCHVISION_SPEC (set TORCH_SPEC/TORCHVISION_SPEC to a build you have)"
fi
TORCH_VER="$("$PY" -c 'import torch; print(torch.__version__)')"
PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
PLAT="$(uname -m)"
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION/torch-$TORCH_VER-$PYTAG-$PLAT"

# ---- mmcv with compiled ops -----------------------------------------------------------------
have_mmcv() {
  "$PY" - "$MMCV_VERSION" <<'PYEOF' >/dev/null 2>&1
import sys
import mmcv, mmcv.ops  # noqa: F401  (mmcv.ops needs the compiled extension)
assert mmcv.__version__ == sys.argv[1]
PYEOF
}
if have_mmcv; then
  say "mmcv $MMCV_VERSION with ops already installed"
else
  wheel="${MMCV_WHEEL:-}"
  if [ -z "$wheel" ]; then
    wheel="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)"
  fi
  if [ -n "$wheel" ]; then
    say "installing cached mmcv wheel $wheel"
  else
    command -v g++ >/dev/null 2>&1 || die "building mmcv's ops needs a C++ compiler (on Debian: apt-get install g++)"
    "$PY" -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
      || die "building mmcv's ops needs the Python headers (on Debian: apt-get install python3-dev)"
    build="$(mktemp -d)"
    log="$CACHE/mmcv-build.log"
    mkdir -p "$CACHE" "$WHEEL_DIR"
    say "building mmcv $MMCV_VERSION with ops for torch $TORCH_VER (about 13 minutes on 2 cores; log: $log)"
    # mmcv's setup.py imports pkg_resources, which setuptools >= 70 no longer ships.
    "${PIP[@]}" install -q 'setuptools<70' wheel ninja 2> >(grep -v -e 'is ignored' -e 'dependency' -e 'requires setuptools' >&2) || true
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$build" \
      || die "could not download the mmcv $MMCV_VERSION source from the package index"
    tar -xzf "$build/mmcv-$MMCV_VERSION.tar.gz" -C "$build"
    # torch >= 2.10 headers need C++20; mmcv's setup.py hard-codes -std=c++17.
    sed -i "s/extra_compile_args\['cxx'\] = \['-std=c++17'\]/extra_compile_args['cxx'] = ['-std=c++20']/" \
      "$build/mmcv-$MMCV_VERSION/setup.py"
    if ! (cd "$build/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" CFLAGS=-g0 CXXFLAGS=-g0 \
          "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$WHEEL_DIR" . >"$log" 2>&1); then
      grep -m 5 -E 'error:|Error' "$log" >&2 || true
      die "building mmcv failed; the first errors are above, the full log is $log"
    fi
    wheel="$(ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)"
    rm -rf "$build"
    say "cached $wheel"
  fi
  "${PIP[@]}" install -q --no-deps --force-reinstall "$wheel" || die "could not install $wheel"
fi

# ---- the OpenMMLab stack and the project ----------------------------------------------------
say "installing mmengine, mmpretrain, mmsegmentation, optuna, openmim, test tools and mmda_vpt (editable)"
"${PIP[@]}" install -q -c "$ROOT/requirements/constraints.txt" "$TORCH_SPEC" "$TORCHVISION_SPEC" \
    -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tune.txt" \
    -r "$ROOT/requirements/tests.txt" -r "$ROOT/requirements/demo.txt" \
    -r "$ROOT/requirements/openmim_imports.txt" 2> >(grep -v 'is ignored' >&2) \
  || die "installing the requirements failed (see pip's message above)"
# openmim's own requirements pin setuptools~=60.2 (through opendatalab -> openxlab), which torch
# and mmengine's pkg_resources look-ups cannot run with: what its code imports came above.
"${PIP[@]}" install -q --no-deps -r "$ROOT/requirements/openmim.txt" 2> >(grep -v 'is ignored' >&2) \
  || die "installing openmim failed (see pip's message above)"
"${PIP[@]}" install -q --no-deps -e "$ROOT" 2> >(grep -v 'is ignored' >&2) || die "installing mmda_vpt failed"

"$PY" -W ignore::UserWarning -c 'import mmda_vpt, mmcv.ops, mmseg.models, mmpretrain.models, mim' \
  || die "the stack does not import; see the traceback above"
echo "$fingerprint" > "$STAMP"
say "ready: torch $TORCH_VER, mmcv $MMCV_VERSION (ops), $("$PY" -c 'import mmengine, mmpretrain, mmseg; print(f"mmengine {mmengine.__version__}, mmpretrain {mmpretrain.__version__}, mmseg {mmseg.__version__}")')"
