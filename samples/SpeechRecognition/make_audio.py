"""Writes the bundled WAVs of samples/SpeechRecognition/audio (committed; rerun only to change them).

    /usr/bin/python3 samples/SpeechRecognition/make_audio.py      (from the repository root)

Needs espeak-ng, sox and numpy (Debian packages), no torch. Sentences of the domain
(../shared/speech-domain.md) spoken with voice variants that the model never heard in training
(the recipe's TEST_VARIANTS), each stored the way users bring files: 44.1 kHz stereo, 8 kHz
telephone, 16 kHz 24-bit, 48 kHz float, unsigned 8-bit, six channels in WAVE_FORMAT_EXTENSIBLE,
and one with an odd-sized LIST chunk before the data. transcripts.tsv holds the reference units.
"""
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models", "recipes", "speech_codeswitch"))
from common import _words, segments_of, units_of, quantize, write_wav  # noqa: E402
from synth import ESPEAK_RATE, ZH_VOICE, espeak, trim  # noqa: E402

OUT = os.path.join(ROOT, "samples", "SpeechRecognition", "audio")

# (file stem, sentence, voice variant, English voice, speed wpm, pitch, sox output options)
FILES = [
    ("01_light_44k_stereo", "请 打开 客厅 的 light", "f4", "en-us", 160, 50,
     ["-r", "44100", "-c", "2", "-b", "16", "-e", "signed-integer"]),
    ("02_aircon_8k_phone", "turn off the 空调 in the 卧室", "m5", "en-gb", 150, 40,
     ["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]),
    ("03_timer_16k_24bit", "set timer for 五 分钟", "Andrea", "en-us", 170, 60,
     ["-r", "16000", "-c", "1", "-b", "24", "-e", "signed-integer"]),
    ("04_robot_48k_float", "机器人 向左 走 three 米", "klatt3", "en-gb-x-rp", 140, 45,
     ["-r", "48000", "-c", "1", "-b", "32", "-e", "floating-point"]),
    ("05_meeting_22k_8bit", "remind me 明天 下午 三 点 开会", "Denis", "en-us-nyc", 155, 35,
     ["-r", "22050", "-c", "1", "-b", "8", "-e", "unsigned-integer"]),
    ("06_music_6ch_extensible", "play 音乐", "m8", "en-029", 165, 55,
     ["-r", "32000", "-c", "6", "-b", "16", "-e", "signed-integer"]),
    ("07_message_list_chunk", "给 妈 send message", "steph2", "en-gb-scotland", 150, 65,
     ["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"]),
    ("08_temperature_16k", "设置 温度 八 度", "Mario", "en-us", 180, 30,
     ["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"]),
]


def synthesize(sentence, variant, en_voice, speed, pitch):
    parts = [np.zeros(int(0.2 * ESPEAK_RATE))]
    for i, (lang, text, _) in enumerate(segments_of(_words(sentence))):
        if i:
            parts.append(np.zeros(int(0.06 * ESPEAK_RATE)))
        x = trim(espeak((ZH_VOICE if lang == "zh" else en_voice) + "+" + variant, text, speed, pitch))
        parts.append(0.5 * x / (np.max(np.abs(x)) + 1e-9))
    parts.append(np.zeros(int(0.2 * ESPEAK_RATE)))
    return np.concatenate(parts)


def add_odd_list_chunk(path):
    """Inserts a 17-byte LIST/INFO chunk (odd size, then its pad byte) between 'fmt ' and 'data'."""
    b = open(path, "rb").read()
    at = b.index(b"data")
    body = b"INFO" + b"ISFT" + struct.pack("<I", 5) + b"moem\0"
    chunk = b"LIST" + struct.pack("<I", len(body)) + body + b"\0"
    b = b[:at] + chunk + b[at:]
    b = b[:4] + struct.pack("<I", len(b) - 8) + b[8:]
    open(path, "wb").write(b)


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for stem, sentence, variant, en_voice, speed, pitch, sox in FILES:
            src = os.path.join(tmp, stem + ".wav")
            write_wav(src, quantize(synthesize(sentence, variant, en_voice, speed, pitch), 16), ESPEAK_RATE)
            dst = os.path.join(OUT, stem + ".wav")
            # -D: no dither (reproducible); sox writes WAVE_FORMAT_EXTENSIBLE for > 2 channels and 24-bit
            subprocess.run(["sox", "-D", src] + sox + [dst], check=True)
            if "list_chunk" in stem:
                add_odd_list_chunk(dst)
            lines.append(stem + ".wav\t" + " ".join(units_of(_words(sentence))))
    with open(os.path.join(OUT, "transcripts.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} files to {OUT}")


if __name__ == "__main__":
    main()
