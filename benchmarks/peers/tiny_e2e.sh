#!/usr/bin/env bash
# The end-to-end proof of benchmarks/peers/lerobot_server.py on something tiny (a few minutes of CPU):
# our MetaWorld dataset -> lerobot-train (ACT, then Diffusion Policy, 20 steps) -> served by vla's PolicyServer
# in the LeRobot venv -> `vla eval --server`. Success is not the point (20 steps of training); the point is that
# every stage runs and the served chunks are LeRobot's own (see the parity check in the commit message).
#
#   VLA=/work/main/.venv/bin/vla LEROBOT_VENV=/work/lerobot-venv bash benchmarks/peers/tiny_e2e.sh [WORK_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VLA="${VLA:-/work/main/.venv/bin/vla}"
LR="${LEROBOT_VENV:-/work/lerobot-venv}"
W="${1:-/tmp/peer_e2e}"
export MUJOCO_GL=egl OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
mkdir -p "$W"

nice -n 19 "$VLA" collect metaworld --suite mt1:reach-v3 --episodes-per-task 3 --cameras corner4,gripperPOV \
  --image-size 64 --workers 1 --out "$W/ds" --overwrite

FEAT='{"observation.state": {"type": "STATE", "shape": [4]},
       "observation.images.corner4": {"type": "VISUAL", "shape": [3, 64, 64]},
       "observation.images.gripperPOV": {"type": "VISUAL", "shape": [3, 64, 64]}}'
COMMON=(--dataset.repo_id=local/peer_ds "--dataset.root=$W/ds" --dataset.video_backend=pyav --policy.device=cpu
        --policy.push_to_hub=false --policy.pretrained_backbone_weights=null "--policy.input_features=$FEAT"
        --steps=20 --batch_size=2 --num_workers=0 --log_freq=5 --save_freq=20 --wandb.enable=false)
for kind in act diffusion; do
  rm -rf "$W/$kind"
  if [ "$kind" = act ]; then extra=(--policy.type=act --policy.chunk_size=20 --policy.n_action_steps=20)
  else extra=(--policy.type=diffusion --policy.horizon=16 --policy.n_action_steps=8 "--policy.down_dims=[64, 128, 256]")
  fi
  nice -n 19 "$LR/bin/lerobot-train" "${COMMON[@]}" "${extra[@]}" "--output_dir=$W/$kind" > "$W/$kind.train.log" 2>&1

  nice -n 19 "$LR/bin/python" "$HERE/lerobot_server.py" --policy "$W/$kind" --port 0 > "$W/$kind.serve.log" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 120); do grep -q "^serving\|^error" "$W/$kind.serve.log" && break; sleep 1; done
  port=$(grep -o "ws://127.0.0.1:[0-9]*" "$W/$kind.serve.log" | head -1 | cut -d: -f3)
  [ -n "$port" ] || { cat "$W/$kind.serve.log"; exit 1; }
  nice -n 19 "$VLA" eval --server "ws://127.0.0.1:$port" --suite mt1:reach-v3 --episodes-per-task 1 --max-steps 20 \
    --workers 1 --out "$W/$kind.eval"
  curl -s "http://127.0.0.1:$port/healthz"; echo
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
