#!/usr/bin/env bash
# Mixed-print vision-stage2 rounds (see demo/NOTES.md): optionally grows a vision
# model (mm-train grow-vision), then runs vision-stage2 rounds, each on a fresh mix of rendered scenes, number-only
# and word/number images of several sides, and averages the last checkpoints of the last round (mm-train average).
# Every round resumes if rerun; data already made is kept.
#
#   scripts/vision-rounds.sh ROOT FROM
#
# FROM: the vision model folder to start from (e.g. assets/models/demo/vision or OUT/checkpoints/step-N).
# Environment:
#   GROW     grow-vision options applied to FROM first (default none), e.g. "--add-global-layers 1 --add-cross-attention-layers 1"
#   ROUNDS   space-separated base seeds, one round each (default "5000 6000 7000 8000": run Y)
#   MIX      space-separated OFFSET:SIDE:COUNT:KINDS parts of a round's mix; part seed = base + OFFSET; KINDS "all" or
#            a --kinds list (default: run Y's 80000 records: scenes 50 %, numbers 33 %, words 17 %)
#   STEPS    steps per round (9000), LR / MIN_LR (0.0005 / 0.00005), WARMUP (100), THREADS (2)
#   GLYPH    media.glyph_loss_weight of the rounds (default 0: off), the auxiliary loss on the glyphs of printed words/numbers
#   GLYPH_HEAD  media.glyph_head: "output" (default, the decoder's output head) or "linear" (a head of the run's own)
#   SHAPE    media.shape_loss_weight (default 0: off), the auxiliary loss naming the shape under every patch of shape scenes
#   ANCHOR   media.anchor_loss_weight (default 0: off), holding non-print images' cross-attention source to each round's starting model's
#   ANCHOR_FROM  media.anchor_from: a vision model folder to hold them to instead (default: each round's starting model)
#   TRAINABLE  space-separated parameter-name prefixes or components trained (train.trainable; default: the recipe's),
#            e.g. "vision_model.transformer.layers.2 vision_model.transformer.layers.3" to train only grown layers
#   AVERAGE  how many last checkpoints of the last round to average (3; 0 or 1: none), SAVE_EVERY steps apart (1000)
#   EVAL     an image manifest for the rounds' evaluation loss (default: the first round's 112-px scenes part's set)
# Prints the final model folder (ROOT/final).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -eq 2 ] || { sed -n 2,25p "$0"; exit 2; }
ROOT="$(mkdir -p "$1" && cd "$1" && pwd)"
FROM="$(cd "$2" && pwd)"
GROW="${GROW:-}"
ROUNDS="${ROUNDS:-5000 6000 7000 8000}"
MIX="${MIX:-100:224:20000:all 200:112:20000:all 300:64:10000:all 700:224:10000:number 400:112:8000:number 500:224:6000:word,number 600:112:6000:word,number}"
STEPS="${STEPS:-9000}" LR="${LR:-0.0005}" MIN_LR="${MIN_LR:-0.00005}" WARMUP="${WARMUP:-100}" THREADS="${THREADS:-2}"
AVERAGE="${AVERAGE:-3}" SAVE_EVERY="${SAVE_EVERY:-1000}" GLYPH="${GLYPH:-0}" GLYPH_HEAD="${GLYPH_HEAD:-output}" SHAPE="${SHAPE:-0}" ANCHOR="${ANCHOR:-0}"
TRAINABLE="${TRAINABLE:-}" ANCHOR_FROM="${ANCHOR_FROM:-}"
extra_args=()
if [ -n "$TRAINABLE" ]; then
  extra_args=(--set "train.trainable=[$(printf '"%s",' $TRAINABLE | sed 's/,$//')]")
fi
[ -z "$ANCHOR_FROM" ] || extra_args+=(--set "media.anchor_from=\"$(cd "$ANCHOR_FROM" && pwd)\"")
dotnet build "$here/src/Tools/MmTrain" -c Release -v q -nologo >/dev/null
MT=(dotnet "$here/src/Tools/MmTrain/bin/Release/net10.0/mm-train.dll")
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$ROOT/rounds.log" >&2; }

tok="$(python3 - "$FROM" <<'PY'
import json, os, sys
d = sys.argv[1]; t = json.load(open(os.path.join(d, "train_info.json")))["tokenizer"]
print(t if t in ("bytes", "llama3") or os.path.isabs(t) else os.path.join(d, t))
PY
)"
case "$tok" in bytes|llama3) ;; *) cp "$tok" "$ROOT/tokenizer.model"; tok="$ROOT/tokenizer.model" ;; esac

from="$FROM"
if [ -n "$GROW" ]; then
  read -ra grow_args <<< "$GROW"
  [ -f "$ROOT/grown/config.json" ] || { log "grow-vision $GROW from $FROM"; "${MT[@]}" grow-vision --model "$FROM" --out "$ROOT/grown" "${grow_args[@]}" >&2; }
  from="$ROOT/grown"
fi

mix() {   # mix BASE DIR: makes the round's parts and DIR/mix.jsonl (image paths absolute)
  local base="$1" dir="$2"
  [ ! -f "$dir/.data-done" ] || return 0
  for part in $MIX; do
    local off side count kinds; IFS=: read -r off side count kinds <<< "$part"
    local seed=$((base + off)) k=()
    [ "$kinds" = all ] || k=(--kinds "$kinds")
    [ -f "$dir/p$seed/images/manifest.jsonl" ] || "${MT[@]}" make-data images --out "$dir/p$seed" --seed "$seed" --size "$side" \
      --count "$count" --eval-count 32 "${k[@]}" >/dev/null
  done
  python3 - "$dir" <<'PY'
import glob, json, os, sys
d = sys.argv[1]
with open(os.path.join(d, "mix.jsonl"), "w") as out:
    for m in sorted(glob.glob(os.path.join(d, "p*", "images", "manifest.jsonl"))):
        for line in open(m):
            r = json.loads(line); r["image"] = os.path.join(os.path.dirname(m), r["image"]); out.write(json.dumps(r) + "\n")
PY
  touch "$dir/.data-done"
}

n=1; last=""
for base in $ROUNDS; do
  dir="$ROOT/round$n-seed$base"; mkdir -p "$dir"
  mix "$base" "$dir"
  eval_set="${EVAL:-$(ls "$ROOT"/round1-seed*/p*/images-eval/manifest.jsonl | head -1)}"
  log "round $n: base seed $base, $(wc -l < "$dir/mix.jsonl") records, $STEPS steps, lr $LR → $MIN_LR, glyph loss $GLYPH ($GLYPH_HEAD head), shape loss $SHAPE, anchor $ANCHOR, from $from"
  "${MT[@]}" vision-stage2 --config "$here/configs/demo/vision-stage2.json" --out "$dir/run" --resume --threads "$THREADS" \
    --set "tokenizer=\"$tok\"" --set "model.init_from=\"$from\"" --set "data.train=\"$dir/mix.jsonl\"" \
    --set "data.eval=\"$eval_set\"" --set "optim.total_steps=$STEPS" --set "optim.lr=$LR" --set "optim.min_lr=$MIN_LR" \
    --set "optim.warmup_steps=$WARMUP" --set "media.glyph_loss_weight=$GLYPH" --set "media.glyph_head=\"$GLYPH_HEAD\"" --set "media.shape_loss_weight=$SHAPE" --set "media.anchor_loss_weight=$ANCHOR" --set "train.save_every=$SAVE_EVERY" --set "train.keep_last=$(( AVERAGE > 3 ? AVERAGE : 3 ))" "${extra_args[@]}" \
    >> "$dir/train.log" 2>&1 || { tail -5 "$dir/train.log" >&2; exit 1; }
  last="$dir/run"; from="$(ls -d "$last/checkpoints/step-"* | sort | tail -1)"; n=$((n + 1))
done

rm -rf "$ROOT/final"
if [ "$AVERAGE" -gt 1 ]; then
  mapfile -t ckpts < <(ls -d "$last/checkpoints/step-"* | sort | tail -"$AVERAGE")
  log "averaging ${ckpts[*]}"
  "${MT[@]}" average "${ckpts[@]}" --out "$ROOT/final" >&2
else
  mkdir -p "$ROOT/final"; cp "$from"/* "$ROOT/final/"
  rm -f "$ROOT/final/optimizer.safetensors" "$ROOT/final/trainer_state.json" "$ROOT/final/master.safetensors"
fi
# The averaged folder holds weights and config; train_info and the tokenizer travel with it (named relatively).
[ -f "$ROOT/final/train_info.json" ] || cp "$from/train_info.json" "$ROOT/final/"
if [ -f "$ROOT/tokenizer.model" ]; then
  cp "$ROOT/tokenizer.model" "$ROOT/final/tokenizer.model"
  python3 - "$ROOT/final/train_info.json" <<'PY'
import json, sys
p = sys.argv[1]; d = json.load(open(p)); d["tokenizer"] = "tokenizer.model"; json.dump(d, open(p, "w"), indent=2)
PY
fi
log "final model: $ROOT/final"
echo "$ROOT/final"
