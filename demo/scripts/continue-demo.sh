#!/usr/bin/env bash
# Continuation rounds on fresh data (see demo/NOTES.md): each round makes a new data set with
# its own seed and continues the previous round's model with the same recipe. Every stage resumes if rerun.
#
#   scripts/continue-demo.sh ROOT VISION_FROM SPEECH_FROM VIDEO_FROM
#
# *_FROM: model folders to continue (e.g. a pipeline run's runs/vision-stage2/final, runs/speech-stage2/final and
# runs/video/final, or the shipped assets/models/demo/{vision,speech,video}); "-" skips that modality.
# Environment: THREADS (libtorch threads, default 2); VISION_ROUNDS, SPEECH_ROUNDS, VIDEO_ROUNDS: space-separated
# SEED:COUNT:STEPS:LR rounds (defaults: the first continuation rounds'); IMAGE_SIZE (side of the rendered images, default 64);
# STAGE2_ROUNDS (vision-stage2 rounds, ≤ 4 tiles, after the vision-stage1 rounds; default none) on images of side
# STAGE2_SIZE (default 224, so that every image fills 2 × 2 tiles), plus as many images of side STAGE2_MIX_SIZE (e.g.
# 112, one tile: so that stage 2 keeps what stage 1 learned; drawn with seed + 100000) when set; SPEC_AUGMENT=1 adds SpecAugment to the speech rounds;
# VIDEO_SIZE (side of the rendered clips, default 64); VIDEO_VISION_FROM (an image-text folder whose base weights replace
# the video model's, media.vision_from; "last" = this run's last vision model; default none); VIDEO_SETS: extra
# space-separated KEY=VALUE overrides for every video round, given after the round's own (so they may replace them),
# e.g. VIDEO_SETS='optim.min_lr=0.0003 train.trainable=["aggregator","video_cross_attention","image_encoder","projector"]'.
# Prints the last checkpoint of each modality.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -eq 4 ] || { sed -n 2,18p "$0"; exit 2; }
ROOT="$(mkdir -p "$1" && cd "$1" && pwd)"
THREADS="${THREADS:-2}"
IMAGE_SIZE="${IMAGE_SIZE:-64}"
STAGE2_ROUNDS="${STAGE2_ROUNDS:-}"
STAGE2_SIZE="${STAGE2_SIZE:-224}"
STAGE2_MIX_SIZE="${STAGE2_MIX_SIZE:-}"
VIDEO_SIZE="${VIDEO_SIZE:-64}"
VISION_ROUNDS="${VISION_ROUNDS-1234:2000:14000:0.001 777:30000:10000:0.001 778:40000:12000:0.001 779:40000:12000:0.0007}"
SPEECH_ROUNDS="${SPEECH_ROUNDS:-5000:6000:3600:0.0005 6000:6000:3600:0.0005 7000:6000:3600:0.0005 8000:6000:3600:0.0005}"
VIDEO_ROUNDS="${VIDEO_ROUNDS:-777:1500:4000:0.002 777:1500:5000:0.001}"
dotnet build "$here/src/Tools/MmTrain" -c Release -v q -nologo >/dev/null
MT=(dotnet "$here/src/Tools/MmTrain/bin/Release/net10.0/mm-train.dll")
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$ROOT/continue.log" >&2; }

tokenizer_of() {   # the tokenizer file a model folder names in train_info.json (relative names are the folder's)
  python3 - "$1" <<'PY'
import json, os, sys
d = sys.argv[1]; t = json.load(open(os.path.join(d, "train_info.json")))["tokenizer"]
print(t if t in ("bytes", "llama3") or os.path.isabs(t) else os.path.join(d, t))
PY
}

# round RECIPE KIND N SEED:COUNT:STEPS:LR FROM [--set …]: one round; prints its last checkpoint
round() {
  local recipe="$1" kind="$2" n="$3" spec="$4" from="$5"; shift 5
  local seed count steps lr; IFS=: read -r seed count steps lr <<< "$spec"
  local dir="$ROOT/$recipe-$n-seed$seed" tok
  if [ ! -f "$dir/.data-done" ]; then
    local size=()
    case "$kind" in
      images) size=(--size "$([ "$recipe" = vision-stage2 ] && echo "$STAGE2_SIZE" || echo "$IMAGE_SIZE")") ;;
      video) size=(--size "$VIDEO_SIZE") ;;
    esac
    "${MT[@]}" make-data "$kind" --out "$dir" --seed "$seed" --count "$count" --eval-count 32 "${size[@]}" >/dev/null
    if [ "$recipe" = vision-stage2 ] && [ -n "$STAGE2_MIX_SIZE" ]; then
      "${MT[@]}" make-data images --out "$dir/mix" --seed $((seed + 100000)) --count "$count" --eval-count 1 --size "$STAGE2_MIX_SIZE" >/dev/null
      python3 - "$dir" <<'PY'
import json, os, sys
d = sys.argv[1]
with open(os.path.join(d, "images-mixed.jsonl"), "w") as out:
    for m in (os.path.join(d, "images", "manifest.jsonl"), os.path.join(d, "mix", "images", "manifest.jsonl")):
        for line in open(m):
            r = json.loads(line); r["image"] = os.path.join(os.path.dirname(m), r["image"]); out.write(json.dumps(r) + "\n")
PY
    fi
    touch "$dir/.data-done"
  fi
  tok="$(tokenizer_of "$from")"
  case "$tok" in bytes|llama3) ;; *) cp "$tok" "$dir/tokenizer.model"; tok="tokenizer.model" ;; esac
  local min warm; min=$(python3 -c "print($lr / 10)"); warm=$(case "$recipe" in vision-stage*) echo 100 ;; *) echo 50 ;; esac); warm=$((warm < steps ? warm : steps))
  local train=()
  [ ! -f "$dir/images-mixed.jsonl" ] || train=(--set "data.train=\"$dir/images-mixed.jsonl\"")
  log "$recipe round $n: seed $seed, $count items${train:+ (+ $count of side $STAGE2_MIX_SIZE)}, $steps steps, lr $lr, from $from"
  "${MT[@]}" "$recipe" --config "$dir/$recipe.json" --out "$dir/runs/$recipe" --resume --threads "$THREADS" \
    --set "tokenizer=\"$tok\"" --set "model.init_from=\"$from\"" --set "optim.total_steps=$steps" --set "optim.lr=$lr" \
    --set "optim.min_lr=$min" --set "optim.warmup_steps=$warm" "${train[@]}" "$@" >> "$dir/train.log" 2>&1 || { tail -5 "$dir/train.log" >&2; exit 1; }
  ls -d "$dir/runs/$recipe/checkpoints/step-"* | sort | tail -1
}

chain() {   # chain RECIPE KIND FROM ROUNDS [--set …]
  local recipe="$1" kind="$2" from="$3" rounds="$4"; shift 4
  local n=1
  for spec in $rounds; do from="$(round "$recipe" "$kind" "$n" "$spec" "$from" "$@")"; n=$((n + 1)); done
  log "$recipe: last checkpoint $from"
  echo "$recipe $from"
}

VIDEO_VISION_FROM="${VIDEO_VISION_FROM:-}"
if [ "$2" != - ]; then
  vision_from="$(cd "$2" && pwd)"
  [ -z "$VISION_ROUNDS" ] || vision_from="$(chain vision-stage1 images "$vision_from" "$VISION_ROUNDS" | tail -1 | cut -d' ' -f2)"
  [ -z "$STAGE2_ROUNDS" ] || vision_from="$(chain vision-stage2 images "$vision_from" "$STAGE2_ROUNDS" | tail -1 | cut -d' ' -f2)"
  echo "vision $vision_from"
  [ "$VIDEO_VISION_FROM" != last ] || VIDEO_VISION_FROM="$vision_from"
fi
speech_sets=(--set media.encoder_from=null --set 'media.speed_perturb=[0.85,0.9,0.95,1.0,1.05,1.1,1.15]')
[ "${SPEC_AUGMENT:-0}" = 1 ] && speech_sets+=(--set media.spec_augment=true)
[ "$3" = - ] || chain speech-stage2 speech "$(cd "$3" && pwd)" "$SPEECH_ROUNDS" "${speech_sets[@]}"
[ "$VIDEO_VISION_FROM" != last ] || { echo "VIDEO_VISION_FROM=last needs a vision model (VISION_FROM)" >&2; exit 2; }
video_sets=(--set media.frame_cache_mb=3072)
read -ra extra_video_sets <<< "${VIDEO_SETS:-}"
for s in "${extra_video_sets[@]}"; do video_sets+=(--set "$s"); done
[ -z "$VIDEO_VISION_FROM" ] || video_sets+=(--set "media.vision_from=\"$(cd "$VIDEO_VISION_FROM" && pwd)\"")
[ "$4" = - ] || chain video video "$(cd "$4" && pwd)" "$VIDEO_ROUNDS" "${video_sets[@]}"
