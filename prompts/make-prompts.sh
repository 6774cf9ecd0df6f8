#!/usr/bin/env bash
# Regenerate the shipped IVR prompts with espeak-ng (synthetic voice, a placeholder until
# recorded human prompts replace them; see README.md).
#
# Output: prompts/<lang>/<name>.wav, 8 kHz mono 16-bit PCM, leading/trailing silence trimmed
# lightly, peak normalised to about -3 dBFS. The gateway converts any WAV at load, but shipping
# the telephone rate keeps the files small and what you hear here is what callers hear.
#
# Needs: espeak-ng, sox. Usage: prompts/make-prompts.sh   (from anywhere)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "make-prompts: $tool not found" >&2; exit 1; }
done

# say <lang-dir> <espeak voice> <name> <text>
say() {
    local lang="$1" voice="$2" name="$3" text="$4"
    local out="$here/$lang/$name.wav"
    mkdir -p "$here/$lang"
    # Slightly slower than espeak's default 175 wpm: callers hear this through a G.711 channel.
    espeak-ng -v "$voice" -s 150 -w "$tmp/raw.wav" "$text"
    # -R: repeatable dither, so regenerating unchanged prompts leaves the files identical.
    # gain -6 first: espeak peaks near full scale and resampling would clip.
    # silence 1 0.02 0.1%: drop leading audio below 0.1% until 20 ms of sound; reverse trick does
    # the tail. Then a 100 ms pad both ends so playback never starts or ends mid-syllable.
    sox -R "$tmp/raw.wav" -r 8000 -c 1 -b 16 "$tmp/trim.wav" gain -6 \
        silence 1 0.02 0.1% reverse silence 1 0.02 0.1% reverse pad 0.1 0.1
    sox -R "$tmp/trim.wav" "$out" gain -n -3
    echo "$lang/$name.wav"
}

# Mandarin: espeak-ng's plain `cmn` voice reads hanzi poorly; `cmn-latn-pinyin` reads both hanzi
# and tone-numbered pinyin correctly. Its dictionary picks the wrong reading for a few
# polyphonic characters, so those words are written in pinyin (check with `espeak-ng -v
# cmn-latn-pinyin -q -x TEXT`): 尽快处理 (it says jin4/chu4), 重新 (it says zhong4).
zh() { say zh cmn-latn-pinyin "$1" "$2"; }
en() { say en en-us "$1" "$2"; }

# Spell the number out: espeak reads "8890" as a quantity (eight thousand...), hotlines are read
# digit by digit.
zh greeting "您好，欢迎致电八八九零市民服务热线。"
zh menu     "投诉举报请按1，政策咨询请按2，公共服务请按3，人工服务请按0。"
zh record   "请在提示音后说出您的问题，说完请按井号键。"
zh thanks   "感谢您的来电，我们会jin3 kuai4 chu3 li3。"
zh goodbye  "再见。"
zh invalid  "对不起，您的选择无效，请chong2 xin1选择。"
zh no_input "对不起，我们没有听到您的选择。"
zh busy     "线路繁忙，请稍后再拨。"
i=0
for d in 零 一 二 三 四 五 六 七 八 九; do
    zh "digit_$i" "$d"
    i=$((i + 1))
done

en greeting "Hello, you have reached the 8 8 9 0 citizen service hotline."
en menu     "For complaints and reports, press 1. For policy questions, press 2. For public services, press 3. For an operator, press 0."
en record   "Please speak after the tone, and press the pound key when you are done."
en thanks   "Thank you for your call. We will handle it as soon as possible."
en goodbye  "Goodbye."
en invalid  "Sorry, that choice is not valid. Please choose again."
en no_input "Sorry, we did not hear a choice."
en busy     "All lines are busy. Please call again later."
i=0
for d in zero one two three four five six seven eight nine; do
    en "digit_$i" "$d"
    i=$((i + 1))
done

# The language choice of config/flows/language-first.toml: each language in its own voice,
# the same file in both directories (it plays before the caller has chosen).
zh language_zh "中文服务请按1。"
en language_en "For English, press 2."
for lang in zh en; do
    sox "$here/zh/language_zh.wav" "$here/en/language_en.wav" "$here/$lang/language.wav"
    echo "$lang/language.wav"
done
rm -f "$here/zh/language_zh.wav" "$here/en/language_en.wav"

