"""Shared pieces of the speech recipe: units, pinyin, sentence shapes, the front end, WAV I/O, MER.

The front end here is the reference that the C# plugin reimplements (see README.md): every step is
float64, in the exact order written below.
"""
import hashlib
import io
import math
import random
import struct
import wave

import numpy as np

# ---------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------
ZH_UNITS = list(
    "打开关闭播放暂停调高低音量乐灯空窗帘客厅卧室厨房请把的设置温度分钟"
    "后提醒我会向前左右走米转机器人现在一二三四五六七八九十零两点下午"
    "上明天给发电话妈")
EN_UNITS = ("turn on off the light tv music play pause stop volume up down set timer alarm for "
            "minutes degrees temperature to robot go forward backward left right meeting email "
            "wifi bluetooth please open close call send message mom remind me at in one two three "
            "four five six seven eight nine ten").split()
BLANK = "<blank>"
VOCAB = [BLANK] + ZH_UNITS + EN_UNITS
UNIT_ID = {u: i for i, u in enumerate(VOCAB)}
assert len(UNIT_ID) == len(VOCAB), "duplicate unit"

# Default reading of every Mandarin unit (pinyin, tone numbers; 5 = neutral tone).
PINYIN = {
    "打": "da3", "开": "kai1", "关": "guan1", "闭": "bi4", "播": "bo1", "放": "fang4",
    "暂": "zan4", "停": "ting2", "调": "tiao2", "高": "gao1", "低": "di1", "音": "yin1",
    "量": "liang4", "乐": "yue4", "灯": "deng1", "空": "kong1", "窗": "chuang1", "帘": "lian2",
    "客": "ke4", "厅": "ting1", "卧": "wo4", "室": "shi4", "厨": "chu2", "房": "fang2",
    "请": "qing3", "把": "ba3", "的": "de5", "设": "she4", "置": "zhi4", "温": "wen1",
    "度": "du4", "分": "fen1", "钟": "zhong1", "后": "hou4", "提": "ti2", "醒": "xing3",
    "我": "wo3", "会": "hui4", "向": "xiang4", "前": "qian2", "左": "zuo3", "右": "you4",
    "走": "zou3", "米": "mi3", "转": "zhuan3", "机": "ji1", "器": "qi4", "人": "ren2",
    "现": "xian4", "在": "zai4", "一": "yi1", "二": "er4", "三": "san1", "四": "si4",
    "五": "wu3", "六": "liu4", "七": "qi1", "八": "ba1", "九": "jiu3", "十": "shi2",
    "零": "ling2", "两": "liang3", "点": "dian3", "下": "xia4", "午": "wu3", "上": "shang4",
    "明": "ming2", "天": "tian1", "给": "gei3", "发": "fa1", "电": "dian4", "话": "hua4",
    "妈": "ma1",
}
assert set(PINYIN) == set(ZH_UNITS), set(ZH_UNITS) ^ set(PINYIN)
# Readings in context (the words the shapes use). Words not listed read char by char with PINYIN.
# 调 is tiao2 in 调高/调低/空调 (diao4 elsewhere), 乐 yue4 in 音乐 (le4 elsewhere), 会 hui4 in 开会,
# 两 liang3; 提醒 is often xing5 in speech, we keep the citation tone.
WORD_PINYIN = {
    "调高": "tiao2 gao1", "调低": "tiao2 di1", "空调": "kong1 tiao2", "音乐": "yin1 yue4",
    "开会": "kai1 hui4", "音量": "yin1 liang4", "上午": "shang4 wu3", "下午": "xia4 wu3",
    "打电话": "da3 dian4 hua4", "电话": "dian4 hua4",
}

ZH_NUM = {1: "一", 2: "二", 3: "三", 4: "四", 5: "五", 6: "六", 7: "七", 8: "八", 9: "九", 10: "十"}
EN_NUM = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
          9: "nine", 10: "ten"}


def is_zh(s):
    return any("\u4e00" <= c <= "\u9fff" for c in s)


def zh_pinyin(word):
    if word in WORD_PINYIN:
        return WORD_PINYIN[word]
    return " ".join(PINYIN[c] for c in word)


# ---------------------------------------------------------------------------------------------
# Sentence shapes (speech-domain.md, plus a few extra shapes so that every unit is used)
# A template is a str (space-separated words; a CJK word is Mandarin, its characters are units),
# NUM (a number 1-10 spoken in either language), NUM0 (0-10, 0 only as 零), or
# ("seq", ...), ("alt", ...), ("opt", x).
# ---------------------------------------------------------------------------------------------
NUM, NUM0 = "<N>", "<N0>"


def S(*a):
    return ("seq",) + a


def A(*a):
    return ("alt",) + a


def O(a):
    return ("opt", a)


SHAPES = {
    "1": S(O("请"), A("打开", "关闭"), O(S(A("客厅", "卧室", "厨房"), "的")),
           A("light", "tv", "wifi", "bluetooth", "空调", "窗帘")),
    "2": S("turn", A("on", "off"), "the", A("灯", "空调", "窗帘"),
           O(S("in the", A("客厅", "卧室", "厨房")))),
    "3a": S(A("播放", "暂停"), "music"),
    "3b": S(A("play", "pause"), "音乐"),
    "4a": S("把", A("volume", "音量"), A("调高", "调低")),
    "4b": S("volume", A("up", "down")),
    "5a": S("set", A("timer", "alarm"), O("for"), NUM, A("分钟", "minutes")),
    "5b": S("设置", NUM, "分钟 的", "timer"),
    "6a": S("机器人", A("向前", "向后", "向左", "向右"), "走", NUM, "米"),
    "6b": S("robot go", A("forward", "backward", "left", "right"), NUM, "米"),
    "7a": S(NUM, "分钟 后 提醒 我 开", "meeting"),
    "7b": S("remind me", "明天", A("上午", "下午"), NUM, "点 开会"),
    "8a": S("设置 温度", NUM0, "度"),
    "8b": S("set temperature to", NUM, "degrees"),
    "9a": S("给 妈", A("send message", "email")),
    "9b": S("call mom", "现在"),
    # extra shapes (cover 请/open/close/please/stop/at/转/零/电话/发 in more contexts)
    "x1": S("please", A("open", "close"), "the", A("窗帘", "空调", "灯", "light")),
    "x2": S(A(S("please stop", A("music", "音乐")), S("stop", "音乐"), S("请 暂停", "music"))),
    "x3": S(A("机器人", "robot"), A(S("向", A("左", "右"), "转"), S("turn", A("left", "right")))),
    "x4": S("给 妈", A("打电话", S("发", A("message", "email")))),
    "x5": S("remind me at", NUM, A("点", "点 的 meeting")),
    "x6": S("明天", A("上午", "下午"), NUM, "点 提醒 我", A("call mom", "开会")),
}


def _num_options(zero):
    opts = []
    for n in range(0 if zero else 1, 11):
        if n == 0:
            opts.append([("zh", "零")])
            continue
        opts.append([("zh", ZH_NUM[n])])
        if n == 2:
            opts.append([("zh", "两")])
        opts.append([("en", EN_NUM[n])])
    return opts


def _words(s):
    return [("zh" if is_zh(w) else "en", w) for w in s.split()]


def enumerate_shape(t):
    """All token sequences a template can produce (list of lists of (lang, word))."""
    if isinstance(t, str):
        if t in (NUM, NUM0):
            return _num_options(t == NUM0)
        return [_words(t)]
    kind = t[0]
    if kind == "alt":
        return [x for a in t[1:] for x in enumerate_shape(a)]
    if kind == "opt":
        return [[]] + enumerate_shape(t[1])
    out = [[]]
    for a in t[1:]:
        out = [p + q for p in out for q in enumerate_shape(a)]
    return out


def sample_shape(t, rng):
    if isinstance(t, str):
        if t in (NUM, NUM0):
            if t == NUM0 and rng.random() < 0.08:
                return [("zh", "零")]
            n = rng.randint(1, 10)
            if rng.random() < 0.5:
                return [("en", EN_NUM[n])]
            return [("zh", "两" if n == 2 and rng.random() < 0.5 else ZH_NUM[n])]
        return _words(t)
    kind = t[0]
    if kind == "alt":
        return sample_shape(rng.choice(t[1:]), rng)
    if kind == "opt":
        return sample_shape(t[1], rng) if rng.random() < 0.5 else []
    return [x for a in t[1:] for x in sample_shape(a, rng)]


def units_of(tokens):
    u = []
    for lang, w in tokens:
        u.extend(list(w) if lang == "zh" else [w])
    return u


def segments_of(tokens):
    """Maximal same-language runs: [(lang, espeak text, units)]."""
    segs = []
    for lang, w in tokens:
        text = zh_pinyin(w) if lang == "zh" else w
        units = list(w) if lang == "zh" else [w]
        if segs and segs[-1][0] == lang:
            segs[-1] = (lang, segs[-1][1] + " " + text, segs[-1][2] + units)
        else:
            segs.append((lang, text, units))
    return segs


def sentence_key(tokens):
    return " ".join(units_of(tokens))


def is_heldout_sentence(key):
    """Sentences reserved for the test split (never used in train/dev): ~1/6 of the sentences of
    the shapes that have many variants (see heldout_ok_shapes)."""
    h = int(hashlib.md5(key.encode("utf-8")).hexdigest()[:8], 16)
    return h % 6 == 0


def shape_sizes():
    return {k: len(enumerate_shape(v)) for k, v in SHAPES.items()}


HELDOUT_MIN_VARIANTS = 40  # only shapes with at least this many sentences lose some to the test


_HELDOUT_SHAPES = None


def heldout_shapes():
    global _HELDOUT_SHAPES
    if _HELDOUT_SHAPES is None:
        _HELDOUT_SHAPES = {k for k, n in shape_sizes().items() if n >= HELDOUT_MIN_VARIANTS}
    return _HELDOUT_SHAPES


def sample_sentence(rng, mode):
    """mode: 'train' (never a held-out sentence), 'heldout' (only held-out sentences),
    'any'. Returns (shape, tokens)."""
    hs = heldout_shapes()
    keys = sorted(SHAPES)
    while True:
        shape = rng.choice(keys if mode != "heldout" else sorted(hs))
        tokens = sample_shape(SHAPES[shape], rng)
        held = shape in hs and is_heldout_sentence(sentence_key(tokens))
        if mode == "train" and held:
            continue
        if mode == "heldout" and not held:
            continue
        return shape, tokens


# ---------------------------------------------------------------------------------------------
# Front end (reimplemented in C#; README.md has the same text)
# ---------------------------------------------------------------------------------------------
SAMPLE_RATE = 16000
FRAME_LENGTH = 400
HOP = 160
N_FFT = 512
N_MELS = 80
FMIN = 20.0
FMAX = 7600.0
LOG_OFFSET = 1e-10   # only an absolute lower bound; REL_FLOOR sets the floor for any real signal
# Level-independent floor and statistics (v2 front end): the log's offset is at least REL_FLOOR
# times the utterance's largest mel energy (80 dB below it), and the per-utterance mean is taken
# over the "active" frames only: frames whose total mel energy is within ACTIVE_DB of the loudest
# frame. Digital silence (exact zeros) and quantization noise therefore look the same, and
# padding a file with silence does not move the mean (the v1 front end subtracted the mean over
# all frames, so half a second of digital silence shifted every feature).
REL_FLOOR = 1e-8
ACTIVE_DB = 40.0
RESAMPLER = {"kind": "windowed_sinc_hann", "cutoff_factor": 0.95, "half_width_zero_crossings": 16}


def resample(s, sr_in, sr_out=SAMPLE_RATE):
    """Windowed-sinc resampler, float64 (the spec in README.md)."""
    s = np.asarray(s, dtype=np.float64)
    if sr_in == sr_out:
        return s.copy()
    ratio = float(sr_out) / float(sr_in)
    cutoff = 0.95 * min(1.0, ratio)
    half = int(math.ceil(16.0 / cutoff))
    n_in = len(s)
    n_out = int(math.floor(n_in * ratio))
    y = np.zeros(n_out, dtype=np.float64)
    chunk = 8192
    offs = np.arange(-half + 1, half + 1, dtype=np.int64)
    for a in range(0, n_out, chunk):
        n = np.arange(a, min(n_out, a + chunk), dtype=np.float64)
        x = n / ratio
        k = np.floor(x).astype(np.int64)[:, None] + offs[None, :]
        t = x[:, None] - k
        valid = (k >= 0) & (k < n_in)
        u = t / half
        hann = np.where(np.abs(u) < 1.0, 0.5 * (1.0 + np.cos(np.pi * u)), 0.0)
        ct = cutoff * t
        with np.errstate(invalid="ignore", divide="ignore"):
            sinc = np.where(ct == 0.0, 1.0, np.sin(np.pi * ct) / (np.pi * ct))
        w = cutoff * sinc * hann * valid
        y[a:a + len(n)] = np.sum(s[np.clip(k, 0, n_in - 1)] * w, axis=1)
    return y


_POLY = {}


def resample_fast(s, sr_in, sr_out=SAMPLE_RATE):
    """Polyphase version of resample() for integer rates (training data only): the same kernel
    tabulated once per phase; equal to resample() up to float64 rounding (~1e-15)."""
    s = np.asarray(s, dtype=np.float64)
    if sr_in == sr_out:
        return s.copy()
    g = math.gcd(int(sr_in), int(sr_out))
    L, P = sr_out // g, sr_in // g  # L outputs per P inputs
    key = (sr_in, sr_out)
    if key not in _POLY:
        ratio = float(sr_out) / float(sr_in)
        cutoff = 0.95 * min(1.0, ratio)
        half = int(math.ceil(16.0 / cutoff))
        x = np.arange(L, dtype=np.float64) / ratio
        base = np.floor(x).astype(np.int64)
        offs = np.arange(-half + 1, half + 1, dtype=np.int64)
        t = x[:, None] - (base[:, None] + offs[None, :])
        u = t / half
        hann = np.where(np.abs(u) < 1.0, 0.5 * (1.0 + np.cos(np.pi * u)), 0.0)
        ct = cutoff * t
        with np.errstate(invalid="ignore", divide="ignore"):
            sinc = np.where(ct == 0.0, 1.0, np.sin(np.pi * ct) / (np.pi * ct))
        _POLY[key] = (base[:, None] + offs[None, :], cutoff * sinc * hann)
    rel, w = _POLY[key]
    half = (rel.shape[1]) // 2
    W = P + 2 * half - 1
    n_in = len(s)
    n_out = int(math.floor(n_in * (float(sr_out) / float(sr_in))))
    Q = -(-n_out // L)
    M = np.zeros((L, W))
    np.put_along_axis(M, rel + half - 1, w, axis=1)
    pad = np.zeros((half - 1) + Q * P + W)
    pad[half - 1:half - 1 + n_in] = s
    blocks = np.lib.stride_tricks.as_strided(pad, shape=(Q, W), strides=(P * 8, 8))
    return (blocks @ M.T).reshape(-1)[:n_out]


def mel_filterbank():
    """[N_MELS, N_FFT//2+1] float64."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def inv(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    pts = inv(np.linspace(mel(FMIN), mel(FMAX), N_MELS + 2))
    freqs = np.arange(N_FFT // 2 + 1, dtype=np.float64) * SAMPLE_RATE / N_FFT
    fb = np.zeros((N_MELS, N_FFT // 2 + 1), dtype=np.float64)
    for m in range(N_MELS):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        rise = (freqs - lo) / (c - lo)
        fall = (hi - freqs) / (hi - c)
        fb[m] = np.maximum(0.0, np.minimum(rise, fall))
    return fb


_FB = mel_filterbank()
_WIN = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(FRAME_LENGTH) / FRAME_LENGTH)


def mel_energies(y16):
    """16 kHz float64 signal -> mel energies [T, 80] float64 (power spectrum through the filters)."""
    y = np.asarray(y16, dtype=np.float64)
    if len(y) < FRAME_LENGTH:
        y = np.concatenate([y, np.zeros(FRAME_LENGTH - len(y))])
    n = 1 + (len(y) - FRAME_LENGTH) // HOP
    idx = np.arange(n)[:, None] * HOP + np.arange(FRAME_LENGTH)[None, :]
    frames = y[idx] * _WIN[None, :]
    spec = np.fft.rfft(frames, n=N_FFT, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    return power @ _FB.T


def normalized_log_mel(mel):
    """mel energies [T, 80] -> log mel minus the mean over active frames [T, 80] (see REL_FLOOR)."""
    offset = max(LOG_OFFSET, REL_FLOOR * float(mel.max()))
    lm = np.log(mel + offset)
    energy = np.log(mel.sum(axis=1) + offset)
    active = energy >= energy.max() - ACTIVE_DB * math.log(10.0) / 10.0
    return lm - lm[active].mean(axis=0, keepdims=True)


def features_unscaled(samples, sr, fast=False):
    """audio at sr -> (normalized log mel [T,80] float64, resampled length)."""
    y = resample_fast(samples, sr) if fast else resample(samples, sr)
    return normalized_log_mel(mel_energies(y)), len(y)


def features(samples, sr, std):
    """The full front end: float32 [T, 80]."""
    f, _ = features_unscaled(samples, sr)
    return (f / np.asarray(std, dtype=np.float64)[None, :]).astype(np.float32)


def n_out_frames(t):
    """Frames after the two stride-2 convolutions (kernel 3, padding 1)."""
    t = (t + 1) // 2
    return (t + 1) // 2


# ---------------------------------------------------------------------------------------------
# WAV I/O (PCM 8-bit unsigned / 16-bit signed)
# ---------------------------------------------------------------------------------------------
def read_wav_bytes(b):
    """espeak --stdout writes a RIFF header whose sizes may be bogus; parse chunks leniently."""
    assert b[:4] == b"RIFF" and b[8:12] == b"WAVE", "not a WAV"
    pos = 12
    fmt = None
    while pos + 8 <= len(b):
        cid, size = b[pos:pos + 4], struct.unpack("<I", b[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", b[pos + 8:pos + 24])
        elif cid == b"data":
            data = b[pos + 8:]
            if size < len(data):
                data = data[:size]
            break
        pos += 8 + size + (size & 1)
    _, ch, sr, _, _, bits = fmt
    if bits == 16:
        x = np.frombuffer(data[:len(data) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    elif bits == 8:
        x = (np.frombuffer(data, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    else:
        raise ValueError(bits)
    if ch > 1:
        x = x[: len(x) // ch * ch].reshape(-1, ch).mean(axis=1)
    return x, sr


def read_wav(path):
    with open(path, "rb") as f:
        return read_wav_bytes(f.read())


def quantize(x, bits):
    """float -> integer PCM samples (int16 or uint8 values), the way we write files."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    if bits == 16:
        return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    return np.clip(np.round(x * 128.0) + 128, 0, 255).astype(np.uint8)


def dequantize(q):
    if q.dtype == np.uint8:
        return (q.astype(np.float64) - 128.0) / 128.0
    return q.astype(np.float64) / 32768.0


def write_wav(path, q, sr):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1 if q.dtype == np.uint8 else 2)
        w.setframerate(sr)
        w.writeframes(q.astype("<i2" if q.dtype == np.int16 else np.uint8).tobytes())


# ---------------------------------------------------------------------------------------------
# Decoding and scoring
# ---------------------------------------------------------------------------------------------
def greedy_ctc(logits):
    """logits [T', V] -> unit ids (collapse repeats, drop blank 0)."""
    best = np.asarray(logits).argmax(axis=-1)
    out, prev = [], -1
    for b in best.tolist():
        if b != prev and b != 0:
            out.append(b)
        prev = b
    return out


def edit_distance(a, b):
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            cur = d[j]
            d[j] = min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
            prev = cur
    return d[len(b)]
