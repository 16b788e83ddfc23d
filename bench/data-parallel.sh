#!/usr/bin/env bash
# Data-parallel scaling of the tiny text-pretrain recipe: 1 process vs `mpirun -np 2` on this machine (CPU, loopback),
# same global batch; prints steps/s, the scaling efficiency, and the gradient all-reduce time and bytes per step.
#   bench/data-parallel.sh [STEPS (40)] [THREADS per process (1)]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
STEPS="${1:-40}"; THREADS="${2:-1}"
work="$(mktemp -d /tmp/l3mm-dp.XXXX)"
dotnet build "$here/src/Tools/MmTrain" -c Release -v q -nologo >/dev/null
dotnet build "$here/demo/src/MmDemo" -c Release -v q -nologo >/dev/null
MT="$here/src/Tools/MmTrain/bin/Release/net10.0/mm-train.dll"
dotnet "$here/demo/src/MmDemo/bin/Release/net10.0/mm-demo.dll" make-data text --out "$work/data" --seed 1 >/dev/null
args=(text-pretrain --config "$work/data/text-pretrain.json" --max-steps "$STEPS" --threads "$THREADS"
      --set train.eval_every=0 --set train.save_every=0 --set train.log_every=1 --set batch.global=2048 --set batch.micro=4)
echo "cores: $(nproc); load at start: $(cut -d' ' -f1-3 /proc/loadavg); $STEPS steps, $THREADS thread(s) per process"
dotnet "$MT" "${args[@]}" --out "$work/one" >/dev/null 2>&1
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo \
  OMPI_MCA_oob_tcp_if_include=lo mpirun --oversubscribe -np 2 dotnet "$MT" "${args[@]}" --out "$work/two" >/dev/null 2>&1
python3 - "$work" <<'PY'
import json, sys
def run(d):
    rows = [json.loads(l) for l in open(f"{sys.argv[1]}/{d}/metrics.jsonl") if '"loss"' in l]
    a, b = rows[1], rows[-1]                       # skip the first step (warm-up)
    n = len(rows) - 2
    return rows, (b["elapsed_s"] - a["elapsed_s"]) / n, (b["tokens"] - a["tokens"]) / (b["elapsed_s"] - a["elapsed_s"])
_, s1, t1 = run("one")
rows2, s2, t2 = run("two")
ar = [r["allreduce_s"] for r in rows2[2:]]
print(f"1 process : {1/s1:6.2f} steps/s  {t1:8.0f} tokens/s")
print(f"2 processes: {1/s2:6.2f} steps/s  {t2:8.0f} tokens/s  speed-up {s1/s2:.2f}x  efficiency {s1/s2/2*100:.0f}%")
print(f"all-reduce: {sum(ar)/len(ar)*1000:.1f} ms/step ({sum(ar)/len(ar)/s2*100:.0f}% of a step), {rows2[-1]['allreduce_bytes']/1e6:.2f} MB of gradients per step per rank")
PY
rm -rf "$work"
