"""A minimal pure-Python PNG writer (zlib + struct, filter type 0 on every row)."""
import struct
import zlib

import numpy as np

# PNG color types
GRAY, RGB, GRAY_ALPHA, RGBA = 0, 2, 4, 6
_CT = {1: GRAY, 2: GRAY_ALPHA, 3: RGB, 4: RGBA}


def _chunk(tag, data):
    c = tag + data
    return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)


def write_png(path, img):
    """img: uint8 or uint16 numpy array [H, W] or [H, W, C] with C in 1..4."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    h, w, c = img.shape
    if img.dtype == np.uint8:
        depth, raw = 8, img.astype(np.uint8)
    elif img.dtype == np.uint16:
        depth, raw = 16, img.astype(">u2")  # PNG samples are big-endian
    else:
        raise ValueError(img.dtype)
    rows = raw.reshape(h, -1).view(np.uint8).reshape(h, -1)
    data = b"".join(b"\x00" + rows[y].tobytes() for y in range(h))  # filter 0 (None)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, _CT[c], 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", ihdr))
        f.write(_chunk(b"IDAT", zlib.compress(data, 9)))
        f.write(_chunk(b"IEND", b""))


def read_png(path):
    """Reader for exactly what write_png produces (used to verify the fixtures round-trip)."""
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, hdr = 8, b"", None
    while pos < len(b):
        n, = struct.unpack(">I", b[pos:pos + 4])
        tag = b[pos + 4:pos + 8]
        data = b[pos + 8:pos + 8 + n]
        pos += 12 + n
        if tag == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", data)
        elif tag == b"IDAT":
            idat += data
    w, h, depth, ct = hdr[:4]
    c = {GRAY: 1, GRAY_ALPHA: 2, RGB: 3, RGBA: 4}[ct]
    bpp = c * depth // 8
    raw = zlib.decompress(idat)
    stride = 1 + w * bpp
    rows = []
    for y in range(h):
        assert raw[y * stride] == 0
        rows.append(raw[y * stride + 1:(y + 1) * stride])
    arr = np.frombuffer(b"".join(rows), dtype=np.uint8 if depth == 8 else ">u2")
    arr = arr.reshape(h, w, c).astype(np.uint8 if depth == 8 else np.uint16)
    return arr
