#!/usr/bin/env bash
# Synthesises every utterance of texts.tsv (file, voice, speed, text) into this folder with
# the repository's Kokoro tool (prompts/tts/say: Kokoro-82M, 8 kHz mono 16-bit).
#   bash tests/data/speech/held2/make.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say="$here/../../../../prompts/tts/say"
tail -n +2 "$here/texts.tsv" | while IFS=$'\t' read -r file voice speed text; do
    "$say" --lang zh --voice "$voice" --speed "$speed" --out "$here/$file" "$text"
done
