# Sourced by tools/dist_train.sh and tools/dist_test.sh: sets RENDEZVOUS, torchrun's rendezvous
# arguments, from NNODES (default 1), NODE_RANK (0), MASTER_ADDR (127.0.0.1) and PORT.
#
#   one node and no PORT: --standalone (torchrun picks a free port, so launches on one machine
#   do not collide);
#   PORT set, or NNODES > 1: MASTER_ADDR:PORT (PORT defaults to 29500).
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
if [ -z "${PORT:-}" ] && [ "$NNODES" = 1 ]; then
  RENDEZVOUS=(--standalone)
else
  RENDEZVOUS=(--nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR"
              --master_port="${PORT:-29500}")
fi
