#!/usr/bin/env bash
# Train with torchrun on GPUS processes per node (without CUDA, mmda_vpt runs them on the CPU
# with the gloo backend).
#
#   tools/dist_train.sh CONFIG GPUS [tools/train.py arguments...]
#
# Environment: NNODES (default 1), NODE_RANK (0), PORT, MASTER_ADDR (127.0.0.1),
# PYTHON (the interpreter; default: the active virtual environment's python, else the
# project's .venv, else python from PATH; see tools/python_env.sh).
# One node without PORT: torchrun --standalone picks a free port, so launches on one machine do
# not collide; PORT set, or NNODES > 1: the rendezvous is MASTER_ADDR:PORT (PORT default 29500;
# see tools/rendezvous.sh).
if [ "$#" -lt 2 ]; then
  echo "usage: $0 CONFIG GPUS [tools/train.py arguments...]" >&2
  exit 2
fi
CONFIG=$1
GPUS=$2
TOOLS="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tools/python_env.sh
source "$TOOLS/python_env.sh"
# shellcheck source=tools/rendezvous.sh
source "$TOOLS/rendezvous.sh"

PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    "${RENDEZVOUS[@]}" \
    --nproc_per_node="$GPUS" \
    "$TOOLS/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
