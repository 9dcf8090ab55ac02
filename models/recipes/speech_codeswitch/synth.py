"""Synthesize the code-switched corpus with espeak-ng, augment it, and compute features.

Every utterance: one sentence from the shapes, its same-language segments synthesized with one
voice variant / speed / pitch (Mandarin: cmn-latn-pinyin fed with pinyin, English: an English
voice), trimmed, joined with short random gaps, then turned into a "user file" (a sample rate, a
sample format, maybe noise) and run through the exact front end.
"""
import math
import os
import random
import subprocess
import time

import numpy as np

from common import (HOP, FRAME_LENGTH, SAMPLE_RATE, UNIT_ID, dequantize, features_unscaled,
                    quantize, read_wav_bytes, resample_fast, sample_sentence, segments_of, units_of,
                    write_wav)

ESPEAK_RATE = 22050
ZH_VOICE = "cmn-latn-pinyin"
EN_VOICES = ["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc",
             "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en"]
# espeak-ng-data/voices/!v variants. Test variants never occur in train/dev.
TEST_VARIANTS = ["f4", "m5", "m8", "klatt3", "klatt5", "Andrea", "Denis", "steph2", "edward2",
                 "Mario"]
VARIANT_DIR = "/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v"


def _all_variants():
    """Every espeak-ng voice variant on the machine (names with spaces left out)."""
    try:
        names = sorted(n for n in os.listdir(VARIANT_DIR) if " " not in n)
    except OSError:
        names = []
    return names or ["f1", "f2", "f3", "f5", "m1", "m2", "m3", "m4", "m6", "m7", "klatt",
                     "klatt2", "klatt4", "klatt6"]


# Training uses every other variant (v1 used 44 of them: unseen variants and untrimmed,
# unpadded synthesis were its weak points on independently made test files).
TRAIN_VARIANTS = [v for v in _all_variants() if v not in TEST_VARIANTS]
assert not set(TRAIN_VARIANTS) & set(TEST_VARIANTS)
NON_SPEECH_FRACTION = 0.015   # train/dev utterances with no speech (empty transcript)
RAW_FRACTION = 0.4            # utterances made of untrimmed espeak output
DITHER_FRACTION = 0.3         # files quantized with dither
TRAIN_SPEED = (115, 220)   # espeak -s, words per minute
TRAIN_PITCH = (5, 95)      # espeak -p, 0..99
TEST_SPEED_HELD = [(100, 115), (220, 235)]
TEST_PITCH_HELD = [(0, 5), (95, 99)]
# sample rates of the non-telephone "user files" (espeak's 22050 resampled with the front end's kernel)
USER_RATES = [16000, ESPEAK_RATE, 16000, ESPEAK_RATE, 44100, 48000]


def espeak(voice, text, speed, pitch):
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text]
    b = subprocess.run(cmd, capture_output=True, check=True).stdout
    x, sr = read_wav_bytes(b)
    assert sr == ESPEAK_RATE, sr
    return x


def trim_bounds(x, sr=ESPEAK_RATE):
    """Where espeak's speech is: [a, b) without its leading/trailing silence (5 ms rms below 2 %
    of the peak rms), 10 ms margin."""
    w = int(0.005 * sr)
    n = len(x) // w
    if n == 0:
        return 0, len(x)
    rms = np.sqrt(np.mean(x[: n * w].reshape(n, w) ** 2, axis=1))
    on = np.nonzero(rms > 0.02 * rms.max())[0]
    if len(on) == 0:
        return 0, len(x)
    return max(0, on[0] * w - int(0.01 * sr)), min(len(x), (on[-1] + 1) * w + int(0.01 * sr))


def trim(x, sr=ESPEAK_RATE):
    a, b = trim_bounds(x, sr)
    return x[a:b]


def pink_noise(n, rng):
    f = np.fft.rfftfreq(n)
    spec = (rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f)))
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    y = np.fft.irfft(spec, n=n)
    return y / (np.std(y) + 1e-12)


def make_utterance(split, idx, seed, heldout_frac=0.5):
    """Returns a dict with the user file (int samples + rate), features, units, labels, meta."""
    rng = random.Random(f"{seed}-{split}-{idx}")
    nrng = np.random.default_rng(rng.getrandbits(32))
    if split == "test":
        shape, tokens = sample_sentence(rng, "heldout" if rng.random() < heldout_frac else "any")
        variant = rng.choice(TEST_VARIANTS)
        speed = rng.randint(*rng.choice(TEST_SPEED_HELD)) if rng.random() < 0.5 \
            else rng.randint(*TRAIN_SPEED)
        pitch = rng.randint(*rng.choice(TEST_PITCH_HELD)) if rng.random() < 0.5 \
            else rng.randint(*TRAIN_PITCH)
    else:
        shape, tokens = sample_sentence(rng, "train")
        variant = rng.choice(TRAIN_VARIANTS)
        speed = rng.randint(*TRAIN_SPEED)
        pitch = rng.randint(*TRAIN_PITCH)
    en_voice = rng.choice(EN_VOICES)
    if split != "test" and rng.random() < NON_SPEECH_FRACTION:
        tokens = []   # no speech at all: silence or noise, empty transcript
    segs = segments_of(tokens)

    # Synthesize and join at 22050 Hz; record the speech region of every segment in seconds.
    # Two styles, as users make such files: "trimmed" (espeak's silences cut, each segment
    # peak-normalized) and "raw" (espeak's output as it comes, silences and level included).
    raw = rng.random() < RAW_FRACTION
    parts, bounds = [], []
    t = 0
    for i, (lang, text, units) in enumerate(segs):
        if i > 0:
            g = int((rng.uniform(0.0, 0.25) if raw else
                     rng.choice([0.0, rng.uniform(0.0, 0.08), rng.uniform(0.03, 0.35)])) * ESPEAK_RATE)
            parts.append(np.zeros(g))
            t += g
        voice = (ZH_VOICE if lang == "zh" else en_voice) + "+" + variant
        x = espeak(voice, text, speed, pitch)
        a, b = trim_bounds(x)
        if not raw:
            x = x[a:b] / (np.max(np.abs(x[a:b])) + 1e-9)
            a, b = 0, len(x)
        x = x * 10 ** (rng.uniform(-4, 4) / 20)   # segments are not equally loud
        parts.append(x)
        bounds.append((lang, (t + a) / ESPEAK_RATE, (t + b) / ESPEAK_RATE))
        t += len(x)
    core = np.concatenate(parts) if parts else np.zeros(int(rng.uniform(0.5, 3.0) * ESPEAK_RATE))
    # leading / trailing silence, none at all included
    lead = int(rng.choice([0.0, rng.uniform(0.0, 0.1), rng.uniform(0.05, 0.5)]) * ESPEAK_RATE)
    tail = int(rng.choice([0.0, rng.uniform(0.0, 0.1), rng.uniform(0.05, 0.5)]) * ESPEAK_RATE)
    bounds = [(l, a + lead / ESPEAK_RATE, b + lead / ESPEAK_RATE) for l, a, b in bounds]

    # augmentation -> the "user file"
    if split == "test":
        cond = ["clean", "tel8k", "noisy", "8bit"][idx % 4]
        noise_snr = rng.uniform(10, 30) if cond == "noisy" else None
        rate = 8000 if cond == "tel8k" else rng.choice(USER_RATES)
        bits = 8 if cond == "8bit" else 16
    else:
        r = rng.random()
        noise_snr = rng.uniform(8, 40) if rng.random() < 0.45 else None
        rate = 8000 if r < 0.25 else rng.choice(USER_RATES)
        bits = 8 if rng.random() < 0.2 else 16
        cond = "+".join([c for c, on in (("noisy", noise_snr is not None), ("tel8k", rate == 8000),
                                          ("8bit", bits == 8)) if on]) or "clean"
    peak = np.max(np.abs(core)) if np.any(core) else 1.0
    gain = 10 ** rng.uniform(-1.3, -0.05) / peak  # peak level -26 dB .. -0.4 dBFS
    core = core * gain
    sig = np.concatenate([np.zeros(lead), core, np.zeros(tail)])
    if noise_snr is not None:
        speech = [p for p in parts if len(p) and np.any(p)]
        ps = (np.mean(np.concatenate(speech) ** 2) * gain ** 2) if speech else 10 ** (-rng.uniform(3, 6))
        # noise over the whole file, or (as when a noisy recording is padded with digital
        # silence) only over the recording, not over the added lead/tail
        whole = rng.random() < 0.7
        n = len(sig) if whole else len(core)
        nz = nrng.standard_normal(n) if rng.random() < 0.5 else pink_noise(n, nrng)
        nz = nz * math.sqrt(ps / 10 ** (noise_snr / 10))
        if whole:
            sig = sig + nz
        else:
            sig[lead:lead + len(core)] += nz
    if rate != ESPEAK_RATE:
        sig = resample_fast(sig, ESPEAK_RATE, rate)
    m = np.max(np.abs(sig))
    if m > 0.99:
        sig = sig * (0.99 / m)
    if rng.random() < DITHER_FRACTION:   # TPDF dither of one LSB, as sox adds when it reduces bits
        lsb = 2.0 / (1 << bits)
        sig = sig + (nrng.random(len(sig)) - nrng.random(len(sig))) * lsb
    q = quantize(sig, bits)
    feats, n16 = features_unscaled(dequantize(q), rate, fast=True)

    # frame language labels on the 10 ms grid: label of the sample at the frame centre
    T = feats.shape[0]
    centres = (np.arange(T) * HOP + FRAME_LENGTH // 2) / SAMPLE_RATE
    lab = np.full(T, -1, np.int8)
    for lang, a, b in bounds:
        lab[(centres >= a) & (centres < b)] = 0 if lang == "zh" else 1
    units = units_of(tokens)
    return {
        "split": split, "idx": idx, "shape": shape, "units": units,
        "ids": [UNIT_ID[u] for u in units], "variant": variant, "en_voice": en_voice,
        "speed": speed, "pitch": pitch, "cond": cond, "rate": rate, "bits": bits,
        "snr": noise_snr, "gain": gain, "segments": [(l, round(a, 4), round(b, 4)) for l, a, b in bounds],
        "feats": feats.astype(np.float32), "lab10": lab, "n16": n16, "q": q,
        "seconds": len(q) / rate,
    }


def _job(args):
    split, idx, seed = args
    u = make_utterance(split, idx, seed)
    if split != "test":
        u.pop("q")
    return u


def build_split(split, n, seed, workers, log=print):
    """Generate n utterances (parallel over `workers` processes); returns a list of dicts."""
    t0 = time.time()
    jobs = [(split, i, seed) for i in range(n)]
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(workers) as pool:
            out = list(pool.imap(_job, jobs, chunksize=16))
    else:
        out = [_job(j) for j in jobs]
    log(f"[data] {split}: {n} utterances, {sum(u['seconds'] for u in out) / 3600:.2f} h, "
        f"{time.time() - t0:.0f} s")
    return out


def pack(utts):
    """Concatenate features for training: dict of arrays."""
    lens = np.array([u["feats"].shape[0] for u in utts], np.int64)
    return {
        "feats": np.concatenate([u["feats"] for u in utts]),
        "lab10": np.concatenate([u["lab10"] for u in utts]),
        "lens": lens,
        "ids": [np.array(u["ids"], np.int64) for u in utts],
        "cond": [u["cond"] for u in utts],
        "variant": [u["variant"] for u in utts],
    }


def write_test_files(utts, folder):
    """Big test split as user files (native rate and sample format) + test.tsv."""
    os.makedirs(os.path.join(folder, "wav"), exist_ok=True)
    lines = []
    for u in utts:
        name = f"wav/test{u['idx']:05d}_{u['cond']}_{u['rate']}_{u['bits']}bit.wav"
        write_wav(os.path.join(folder, name), u["q"], u["rate"])
        lines.append(name + "\t" + " ".join(u["units"]))
    with open(os.path.join(folder, "test.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
