#!/usr/bin/env bash
# The main job: caption images, transcribe speech and describe video clips with the small demo models shipped in
# assets/models/demo (trained by our own recipes, demo/; see assets/models/demo/MODEL_CARD.md), on the
# held-out samples in assets/demo. Prints each prediction beside its reference, with the scores, as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg) >/tmp/l3mm-apt.log 2>&1 || true
  fi
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/Tools/MmTrain -c Release -v q -nologo > /dev/null
mt() { dotnet src/Tools/MmTrain/bin/Release/net10.0/mm-train.dll "$@"; }
echo "== captions (assets/demo/images) =="
mt eval caption --model assets/models/demo/vision --data assets/demo/images/manifest.jsonl
echo "== transcription (assets/demo/speech, voices not seen in training) =="
mt eval asr --model assets/models/demo/speech --data assets/demo/speech/manifest.jsonl
echo "== video (assets/demo/videos) =="
mt eval video --model assets/models/demo/video --data assets/demo/videos/manifest.jsonl
