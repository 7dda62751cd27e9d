#!/usr/bin/env python3
"""Writes the GGUF test fixtures under crates/promptune/tests/fixtures/gguf/.

Run with the reference venv (see shared/reference/setup.sh), from anywhere:

    python tests/reference/make_gguf_fixtures.py

Outputs (all small, deterministic for a given gguf-py version):

* ``quant/<TYPE>.bin``: raw ggml blocks of one type; ``quant/<TYPE>.f32``: gguf-py's dequantization
  of them as little-endian f32. For the 32-element block types, half the blocks come from
  quantizing a random array with gguf-py and half are random bytes; for the k-quants (which gguf-py
  cannot quantize) all blocks are random bytes. In random blocks the f16 scale fields are replaced
  by finite values, so every decoded value is finite.
* ``tiny.gguf``: a GGUF v3 file with one metadata entry of every value type (nested arrays too),
  a custom alignment of 64 and small tensors of several types; ``tiny.json``: what a reader must
  find in it (metadata and the dequantized tensors, shapes in numpy order).
* ``real_models.json`` (only when MODELS_DIR points at shared/models/fetch.sh's output): for the
  real SmolLM2 and Gemma 3 checkpoints, a 64-bit hash and the sum of gguf-py's dequantization of
  one tensor per ggml type. No weights are stored.
"""

import json
import pathlib

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from gguf.quants import quantize, dequantize

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/promptune/tests/fixtures/gguf"

# Byte offsets of the f16 scale fields inside one block, per type.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
QUANTIZABLE = {T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0}


def random_blocks(rng, qtype, n_blocks):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scale = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw


def quant_fixtures(rng):
    qdir = OUT / "quant"
    qdir.mkdir(parents=True, exist_ok=True)
    n = 1024  # elements per fixture: 32 blocks of 32 or 4 super-blocks of 256
    for qtype in [T.F32, T.F16, T.BF16]:
        x = (rng.standard_normal(n) * 3).astype(np.float32)
        if qtype == T.F32:
            raw = x.view(np.uint8)
        elif qtype == T.F16:
            raw = x.astype(np.float16).view(np.uint8)
        else:
            raw = (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        write_quant(qdir, qtype, raw, n)
    for qtype in F16_FIELDS:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        n_blocks = n // block
        if qtype in QUANTIZABLE:
            half = n_blocks // 2
            x = (rng.standard_normal((half, block)) * rng.uniform(0.01, 2.0, (half, 1))).astype(np.float32)
            x[0, :] = 0.0  # an all-zero block
            q = quantize(x, qtype).reshape(half, size)
            raw = np.concatenate([q, random_blocks(rng, qtype, n_blocks - half)])
        else:
            raw = random_blocks(rng, qtype, n_blocks)
        write_quant(qdir, qtype, raw.reshape(-1), n)


def write_quant(qdir, qtype, raw, n):
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    expected = dequantize(raw.reshape(1, -1), qtype).astype(np.float32).reshape(-1)
    assert expected.size == n and np.isfinite(expected).all(), qtype.name
    (qdir / f"{qtype.name}.bin").write_bytes(raw.tobytes())
    (qdir / f"{qtype.name}.f32").write_bytes(expected.astype("<f4").tobytes())


def tiny_gguf(rng):
    path = OUT / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_custom_alignment(64)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 0.125)
    w.add_uint64("test.u64", 2**40 + 7)
    w.add_int64("test.i64", -(2**40))
    w.add_float64("test.f64", 2.5e-300)
    w.add_bool("test.true", True)
    w.add_bool("test.false", False)
    w.add_string("test.string", "héllo, 世界 🤗")
    w.add_key_value("test.empty_string", "", V.STRING)  # add_string skips empty strings
    w.add_array("test.str_array", ["a", "", "ü", "tab\there"])
    w.add_key_value("test.u8_array", [1, 2, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.i32_array", [-1, 0, 7], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.f32_array", [0.5, -1.25, 3.0], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.bool_array", [True, False], V.ARRAY, sub_type=V.BOOL)
    w.add_array("test.nested", [[1, 2], [3]])
    w.add_uint32("llama.block_count", 2)

    tensors = {}

    def add(name, ggml_type, raw, shape):
        # raw: uint8 bytes (quantized) or a typed array; shape in numpy order
        if raw.dtype == np.uint8:
            w.add_tensor(name, raw.reshape(shape[:-1] + [-1]), raw_dtype=ggml_type)
            flat = raw.reshape(1, -1)
        else:
            w.add_tensor(name, raw)
            flat = raw
        values = dequantize(flat.view(np.uint8).reshape(1, -1) if raw.dtype != np.uint8 else flat, ggml_type)
        tensors[name] = {
            "type": ggml_type.name,
            "shape": shape,
            "values": [float(v) for v in np.asarray(values, dtype=np.float32).reshape(-1)],
        }

    a = rng.standard_normal((3, 5)).astype(np.float32)
    add("plain.f32", T.F32, a, [3, 5])
    add("vector.f32", T.F32, rng.standard_normal(7).astype(np.float32), [7])
    add("half.f16", T.F16, rng.standard_normal((2, 4)).astype(np.float16), [2, 4])
    bf = (rng.standard_normal((2, 3)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    add("brain.bf16", T.BF16, bf.view(np.uint8).reshape(2, 6), [2, 3])
    q8 = quantize(rng.standard_normal((2, 64)).astype(np.float32), T.Q8_0)
    add("blk.0.q8_0", T.Q8_0, q8, [2, 64])
    q40 = quantize(rng.standard_normal((2, 3, 32)).astype(np.float32), T.Q4_0)
    add("blk.0.q4_0_3d", T.Q4_0, q40, [2, 3, 32])
    add("blk.1.q4_k", T.Q4_K, random_blocks(rng, T.Q4_K, 1), [1, 256])
    add("blk.1.q6_k", T.Q6_K, random_blocks(rng, T.Q6_K, 2), [2, 256])
    # A type the reader knows but cannot decode: raw bytes of one IQ4_NL block.
    w.add_tensor("unsupported.iq4_nl", rng.integers(0, 256, (1, 18), dtype=np.uint8), raw_dtype=T.IQ4_NL)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    metadata = {
        "general.architecture": "llama", "general.alignment": 64,
        "test.u8": 200, "test.i8": -100, "test.u16": 60000, "test.i16": -30000,
        "test.u32": 4_000_000_000, "test.i32": -2_000_000_000, "test.f32": 0.125,
        "test.u64": 2**40 + 7, "test.i64": -(2**40), "test.f64": 2.5e-300,
        "test.true": True, "test.false": False, "test.string": "héllo, 世界 🤗",
        "test.empty_string": "", "test.str_array": ["a", "", "ü", "tab\there"],
        "test.u8_array": [1, 2, 255], "test.i32_array": [-1, 0, 7],
        "test.f32_array": [0.5, -1.25, 3.0], "test.bool_array": [True, False],
        "test.nested": [[1, 2], [3]], "llama.block_count": 2,
    }
    (OUT / "tiny.json").write_text(
        json.dumps({"version": 3, "alignment": 64, "metadata": metadata, "tensors": tensors}, indent=1,
                   ensure_ascii=False) + "\n")

    # Cross-check with gguf-py's own reader.
    r = gguf.GGUFReader(str(path))
    for t in r.tensors:
        if t.name in tensors:
            got = dequantize(t.data, t.tensor_type).reshape(-1)
            assert np.array_equal(got.astype(np.float32), np.array(tensors[t.name]["values"], np.float32)), t.name


HASH_MULT = np.uint64(0x9E3779B97F4A7C15)


def value_hash(values):
    """sum_i bits(values[i]) * (i * 0x9E3779B97F4A7C15 + 1) mod 2^64, over the f32 bit patterns."""
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    h = np.uint64(0)
    step = 1 << 22
    with np.errstate(over="ignore"):
        for start in range(0, flat.size, step):
            bits = flat[start:start + step].view(np.uint32).astype(np.uint64)
            idx = np.arange(start, start + bits.size, dtype=np.uint64)
            h = h + (bits * (idx * HASH_MULT + np.uint64(1))).sum(dtype=np.uint64)
    return int(h)


REAL_MODELS = {
    "smollm2": "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m/gemma-3-270m-q4_k_m.gguf",
}


def real_model_stats(models_dir):
    """Hashes of gguf-py's dequantization of the first tensor of each type (and the embedding) of
    the real checkpoints; no weights are stored, only a 64-bit hash and a sum per tensor."""
    out = {}
    for key, rel in REAL_MODELS.items():
        path = pathlib.Path(models_dir) / rel
        if not path.is_file():
            continue
        r = gguf.GGUFReader(str(path))
        seen, entries = set(), {}
        for t in r.tensors:
            if t.tensor_type in seen and t.name != "token_embd.weight":
                continue
            seen.add(t.tensor_type)
            values = dequantize(t.data, t.tensor_type).astype(np.float32)
            entries[t.name] = {
                "type": t.tensor_type.name,
                "shape": [int(d) for d in reversed(t.shape.tolist())],
                "hash": value_hash(values),
                "sum": float(values.astype(np.float64).sum()),
            }
        out[key] = {"file": rel, "tensors": entries}
    return out


def main():
    import os
    rng = np.random.default_rng(20240601)
    quant_fixtures(rng)
    tiny_gguf(rng)
    models_dir = os.environ.get("MODELS_DIR")
    if models_dir:
        stats = real_model_stats(models_dir)
        (OUT / "real_models.json").write_text(json.dumps(stats, indent=1) + "\n")
    else:
        print("MODELS_DIR not set: keeping the existing real_models.json")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
