# Sourced by tools/dist_train.sh and tools/dist_test.sh: sets PYTHON, the interpreter they run.
#
#   PYTHON, when set;
#   else `python` from PATH when a virtual environment is active (VIRTUAL_ENV);
#   else the project's .venv (what `make setup` builds), when it exists;
#   else `python` from PATH.
#
# So the launchers work right after `make setup` without activating anything.
if [ -z "${PYTHON:-}" ]; then
  _mmda_vpt_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ -n "${VIRTUAL_ENV:-}" ]; then
    PYTHON=python
  elif [ -x "$_mmda_vpt_root/.venv/bin/python" ]; then
    PYTHON="$_mmda_vpt_root/.venv/bin/python"
  else
    PYTHON=python
  fi
  unset _mmda_vpt_root
fi
