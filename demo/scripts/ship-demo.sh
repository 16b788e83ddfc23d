#!/usr/bin/env bash
# Copies the final models of a demo pipeline run (scripts/train-demo.sh ROOT) into assets/models/demo, without
# optimizer state, with the run's tokenizer beside each model, and a few held-out items into assets/demo.
#   scripts/ship-demo.sh ROOT
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$(cd "$1" && pwd)"
dst="$here/assets/models/demo"
rm -rf "$dst"/vision "$dst"/speech "$dst"/video "$here/assets/demo"   # MODEL_CARD.md stays
mkdir -p "$dst" "$here/assets/demo"
for pair in vision:vision-stage2 speech:speech-stage2 video:video; do
  name="${pair%%:*}"; stage="${pair#*:}"
  mkdir -p "$dst/$name"
  for f in "$ROOT/runs/$stage/final/"*; do
    case "$(basename "$f")" in optimizer.safetensors|trainer_state.json|master.safetensors) ;; *) cp "$f" "$dst/$name/" ;; esac
  done
  if [ -f "$ROOT/tokenizer.model" ]; then
    cp "$ROOT/tokenizer.model" "$dst/$name/tokenizer.model"
    python3 - "$dst/$name/train_info.json" <<'PY'
import json, sys
p = sys.argv[1]; d = json.load(open(p))
if d.get("tokenizer") not in ("bytes", "llama3"): d["tokenizer"] = "tokenizer.model"
json.dump(d, open(p, "w"), indent=2)
PY
  fi
done
# Held-out samples: images of the evaluation set, speech of held-out voices, clips of the evaluation set.
sample() {   # sample SRC_SET DST_SET N KEY
  local src="$ROOT/$1" out="$here/assets/demo/$2"; mkdir -p "$out"
  python3 - "$src" "$out" "$3" "$4" <<'PY'
import json, os, shutil, sys
src, out, n, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
lines = [json.loads(l) for l in open(os.path.join(src, "manifest.jsonl"))][:n]
with open(os.path.join(out, "manifest.jsonl"), "w") as m:
    for r in lines:
        name = os.path.basename(r[key]); shutil.copy(os.path.join(src, r[key]), os.path.join(out, name))
        r[key] = name; m.write(json.dumps(r) + "\n")
PY
}
sample images-eval images 8 image
sample speech-heldout speech 4 audio
sample videos-eval videos 4 video
du -sh "$dst" "$here/assets/demo"
