"""What the reference fixtures share: safetensors files (MODEL.md "The weight file") and FNV-1a 64 ids."""
import json, struct
import numpy as np


def write_safetensors(path, tensors, metadata):
    """u64le header length N, N bytes JSON header (space padded to 8+N ≡ 0 mod 8), raw f32 LE."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((-(8 + len(hj))) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))


def read_safetensors(path):
    """Tiny reader: returns ({name: float64 array}, metadata). Zero-size tensors ([0, d]) have begin == end."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    assert (8 + n) % 8 == 0
    header, buf = json.loads(data[8:8 + n].decode("utf-8")), data[8 + n:]
    meta, out, end = header.pop("__metadata__"), {}, 0
    for name, h in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        b, e = h["data_offsets"]
        assert h["dtype"] == "F32" and b == end and e - b == 4 * int(np.prod(h["shape"], dtype=np.int64))
        out[name] = np.frombuffer(buf[b:e], dtype="<f4").reshape(h["shape"]).astype(np.float64)
        end = e
    assert end == len(buf)
    return out, meta


def fnv1a64(s):
    """MODEL.md 'Categorical ids': FNV-1a 64 over the UTF-8 bytes, 64-bit wrap-around."""
    h = 0xCBF29CE484222325
    for byte in s.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h
