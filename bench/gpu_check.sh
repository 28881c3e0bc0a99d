#!/usr/bin/env bash
# The GPU paths a CPU cannot run, in one go (under 8 minutes on one GPU): one line per check, exit 1
# if any failed. Each check's output is kept in OUT/NAME.log.
#
#     bash bench/gpu_check.sh [OUT]              # on a machine with a CUDA GPU, r1lab installed
#     R1LAB_CHECK_DEVICE=cpu bash bench/gpu_check.sh /tmp/check   # the same commands on a CPU (gloo)
#
# torchrun --nproc_per_node 1 joins a process group all the same (r1lab/dist.py), so NCCL runs every
# collective that N processes would. vLLM is not checked here (its wheel is too large to carry to an
# offline machine); tests/test_rollout_vllm.py drives that path through a stand-in with vLLM's API.
set -u
OUT=${1:-/tmp/r1lab-gpu-check}
DEVICE=${R1LAB_CHECK_DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
rm -rf "${OUT:?}"/{zero,zero-fsdp,zero-bf16,sft,rm}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
fails=0
port=29650

check() {  # check NAME COMMAND...: one line, ok or FAIL, with the seconds it took
    local name=$1 start=$SECONDS
    shift
    if "$@" >"$OUT/$name.log" 2>&1; then
        printf 'ok    %-22s %4d s\n' "$name" $((SECONDS - start))
    else
        printf 'FAIL  %-22s %4d s   (%s)\n' "$name" $((SECONDS - start)) "$(tail -n 1 "$OUT/$name.log")"
        fails=$((fails + 1))
    fi
}

torchrun1() {  # r1lab under torchrun with one process
    port=$((port + 1))
    "$PY" -m torch.distributed.run --nproc_per_node 1 --master_port "$port" -m r1lab "$@" --device "$DEVICE"
}

"$PY" - <<PYEOF
import platform, torch, transformers
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"machine: {platform.node()}, GPU {gpu}, torch {torch.__version__}, transformers {transformers.__version__}, "
      f"CPU {torch.backends.cpu.get_cpu_capability()}")
PYEOF
"$PY" - >"$OUT/sft.jsonl" <<'PYEOF'
import json
for i in range(64):
    a, b = 12 + i, 3 + i % 5
    print(json.dumps({"prompt": f"what is {a} times {b}",
                      "completion": f"<think> {a} times {b} is {a * b} </think> <answer> {a * b} </answer>"}))
PYEOF

if [ "$DEVICE" = cuda ]; then
    check cuda-available "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'"
    check nccl-collectives "$PY" -m torch.distributed.run --nproc_per_node 1 --master_port 29649 -c "
import torch
from r1lab import dist
world, device = dist.init('auto')
assert torch.distributed.get_backend() == 'nccl' and device.type == 'cuda', (torch.distributed.get_backend(), device)
assert dist.all_sum([1.5, 2.0], world) == [1.5, 2.0] and dist.any_true(True, world)
m = torch.nn.Linear(4, 4).to(device); m(torch.ones(2, 4, device=device)).sum().backward(); dist.sum_gradients(m, world)
assert dist.gather({'rank': world.rank}, world) == [{'rank': 0}]
dist.close(world)"
fi
SMALL=(--steps 3 --prompts-per-step 8 --group-size 4 --max-new-tokens 64 --eval-problems 16 --eval-k 2)
check zero-torchrun torchrun1 zero "${SMALL[@]}" --precision fp32 --out "$OUT/zero"
check zero-fsdp torchrun1 zero "${SMALL[@]}" --fsdp --precision fp32 --out "$OUT/zero-fsdp"
check zero-bf16 torchrun1 zero "${SMALL[@]}" --precision bf16 --out "$OUT/zero-bf16"
check sft-torchrun torchrun1 sft --data "$OUT/sft.jsonl" --epochs 1 --examples-per-step 16 --out "$OUT/sft"
check rm-torchrun torchrun1 rm --kind helpfulness --examples 128 --batch 32 --epochs 1 --out "$OUT/rm"
check engine-vs-hf-fp32 "$PY" bench/gpu_engine_check.py --device "$DEVICE" --precision fp32
check engine-vs-hf-bf16 "$PY" bench/gpu_engine_check.py --device "$DEVICE" --precision bf16
grep -h "greedy tokens\|rollout 8" "$OUT"/engine-vs-hf-*.log
echo "$fails check(s) failed; logs in $OUT"
[ "$fails" -eq 0 ]
