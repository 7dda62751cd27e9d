//! GGUF reader and dequantization, checked against fixtures written by gguf-py
//! (`tests/reference/make_gguf_fixtures.py`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use promptune::checkpoint::dequant;
use promptune::checkpoint::gguf::{GgmlType, GgufFile, GgufValue};
use promptune::Error;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn ggml_type(name: &str) -> GgmlType {
    *GgmlType::ALL
        .iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("no type {name}"))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}[{i}]: got {g:e}, gguf-py has {w:e}"
        );
    }
}

#[test]
fn dequantization_matches_gguf_py() {
    let dir = fixtures().join("quant");
    let types = [
        "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
        "Q5_K", "Q6_K",
    ];
    for name in types {
        let raw = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
        let want = f32s(&std::fs::read(dir.join(format!("{name}.f32"))).unwrap());
        let ty = ggml_type(name);
        assert!(ty.is_supported(), "{name}");
        let got = dequant::dequantize(ty, &raw, want.len()).unwrap();
        assert_bits_eq(&got, &want, name);
    }
}

fn tiny() -> (GgufFile, Value) {
    let file = GgufFile::open(&fixtures().join("tiny.gguf")).unwrap();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny.json")).unwrap())
            .unwrap();
    (file, json)
}

/// Whether a parsed metadata value equals its JSON description.
fn same_value(v: &GgufValue, j: &Value) -> bool {
    match (v, j) {
        (GgufValue::Bool(b), Value::Bool(c)) => b == c,
        (GgufValue::String(s), Value::String(t)) => s == t,
        (GgufValue::F32(x), Value::Number(n)) => *x as f64 == n.as_f64().unwrap(),
        (GgufValue::F64(x), Value::Number(n)) => *x == n.as_f64().unwrap(),
        (GgufValue::Array(items), Value::Array(js)) => {
            items.len() == js.len() && items.iter().zip(js).all(|(a, b)| same_value(a, b))
        }
        (v, Value::Number(n)) => match v.as_integer() {
            Some(i) => n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)) == Some(i),
            None => false,
        },
        _ => false,
    }
}

#[test]
fn tiny_file_metadata() {
    let (f, json) = tiny();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    let want = json["metadata"].as_object().unwrap();
    assert_eq!(
        f.metadata().len(),
        want.len(),
        "keys: {:?}",
        f.metadata().keys()
    );
    for (k, j) in want {
        let v = f.get(k).unwrap_or_else(|| panic!("missing {k}"));
        assert!(same_value(v, j), "{k}: {v:?} vs {j}");
    }
    // Exact types as written by gguf-py.
    assert_eq!(f.get("test.u8"), Some(&GgufValue::U8(200)));
    assert_eq!(f.get("test.i16"), Some(&GgufValue::I16(-30000)));
    assert_eq!(f.get("test.u64"), Some(&GgufValue::U64((1 << 40) + 7)));
    assert_eq!(f.get("test.f64"), Some(&GgufValue::F64(2.5e-300)));

    assert_eq!(f.architecture().unwrap(), "llama");
    assert_eq!(f.get_u32("test.u8").unwrap(), 200);
    assert_eq!(f.get_u32("test.u32").unwrap(), 4_000_000_000);
    assert_eq!(f.get_u32("llama.block_count").unwrap(), 2);
    assert_eq!(f.get_u64("test.u64").unwrap(), (1 << 40) + 7);
    assert_eq!(f.get_i64("test.i64").unwrap(), -(1 << 40));
    assert_eq!(f.get_f32("test.f32").unwrap(), 0.125);
    assert_eq!(f.get_f32("test.u8").unwrap(), 200.0);
    assert!(f.get_bool("test.true").unwrap());
    assert!(!f.get_bool("test.false").unwrap());
    assert_eq!(f.get_str("test.string").unwrap(), "héllo, 世界 🤗");
    assert_eq!(f.get_str("test.empty_string").unwrap(), "");
    assert_eq!(
        f.get_str_array("test.str_array").unwrap(),
        ["a", "", "ü", "tab\there"]
    );
    assert_eq!(f.get_i32_array("test.i32_array").unwrap(), [-1, 0, 7]);
    assert_eq!(f.get_i32_array("test.u8_array").unwrap(), [1, 2, 255]);
    assert_eq!(f.get_u32_array("test.u8_array").unwrap(), [1, 2, 255]);
    assert_eq!(
        f.get_f32_array("test.f32_array").unwrap(),
        [0.5, -1.25, 3.0]
    );
    assert_eq!(f.get_f32_array("test.i32_array").unwrap(), [-1.0, 0.0, 7.0]);
    assert_eq!(f.opt_u32("nope").unwrap(), None);
    assert_eq!(f.opt_str("test.string").unwrap(), Some("héllo, 世界 🤗"));
    assert_eq!(f.opt_str_array("nope").unwrap(), None);

    let config_err = |r: Result<(), Error>, needles: &[&str]| {
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e:?}");
        let msg = e.to_string();
        for n in needles {
            assert!(msg.contains(n), "`{msg}` lacks `{n}`");
        }
        assert!(msg.contains("tiny.gguf"), "{msg}");
    };
    config_err(
        f.get_str("general.missing").map(drop),
        &["general.missing", "missing"],
    );
    config_err(
        f.get_str("test.u32").map(drop),
        &["test.u32", "u32", "string"],
    );
    config_err(f.get_u32("test.i8").map(drop), &["test.i8", "i8"]);
    config_err(f.get_u32("test.u64").map(drop), &["test.u64"]);
    config_err(f.get_u32("test.string").map(drop), &["test.string"]);
    config_err(f.opt_bool("test.u8").map(drop), &["test.u8", "bool"]);
    config_err(
        f.get_i32_array("test.str_array").map(drop),
        &["test.str_array", "element 0"],
    );
    config_err(
        f.get_str_array("test.string").map(drop),
        &["test.string", "array"],
    );
    config_err(f.get_f32_array("test.nested").map(drop), &["test.nested"]);
}

#[test]
fn tiny_file_tensors() {
    let (f, json) = tiny();
    let want = json["tensors"].as_object().unwrap();
    assert_eq!(f.tensor_infos().len(), want.len() + 1);
    for (name, t) in want {
        let info = f.tensor_info(name).unwrap();
        assert_eq!(info.ggml_type.name(), t["type"].as_str().unwrap(), "{name}");
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.shape(), shape, "{name}");
        let mut dims = shape.clone();
        dims.reverse();
        assert_eq!(info.dims, dims, "{name}: ggml order");
        assert_eq!(info.n_elements, shape.iter().product::<usize>());
        assert_eq!(info.offset % 64, 0, "{name}: aligned");

        let (got_shape, values) = f.tensor_f32(name).unwrap();
        assert_eq!(got_shape, shape, "{name}");
        let want_values: Vec<f32> = t["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_bits_eq(&values, &want_values, name);
        assert_eq!(f.tensor_bytes(name).unwrap().len(), info.n_bytes());
    }

    match f.tensor_f32("unsupported.iq4_nl") {
        Err(Error::UnsupportedQuant { name, id, tensor }) => {
            assert_eq!(
                (name.as_str(), id, tensor.as_str()),
                ("IQ4_NL", 20, "unsupported.iq4_nl")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.tensor_f32("no.such.tensor"),
        Err(Error::MissingTensor { .. })
    ));
    assert!(f.tensor_info("no.such.tensor").is_none());
}

// ---- corruption --------------------------------------------------------------------------

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Writes `bytes` to a fresh file under the target's temp dir and opens it.
fn open_bytes(bytes: &[u8]) -> (PathBuf, promptune::Result<GgufFile>) {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("gguf-corrupt-{}-{n}.gguf", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let r = GgufFile::open(&path);
    (path, r)
}

fn expect_format_error(bytes: &[u8], needle: &str) {
    let (path, r) = open_bytes(bytes);
    match r {
        Err(e @ Error::Format { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&*path.to_string_lossy()), "no path in `{msg}`");
            assert!(
                msg.to_lowercase().contains(&needle.to_lowercase()),
                "`{msg}` lacks `{needle}`"
            );
        }
        Err(e) => panic!("expected a format error about `{needle}`, got {e:?}"),
        Ok(_) => panic!("expected a format error about `{needle}`, file opened"),
    }
    std::fs::remove_file(path).ok();
}

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(fixtures().join("tiny.gguf")).unwrap()
}

fn find(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in fixture")
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn truncation_is_an_error_everywhere() {
    let bytes = tiny_bytes();
    let f = GgufFile::open(&fixtures().join("tiny.gguf")).unwrap();
    let data_end = f
        .tensor_infos()
        .iter()
        .map(|t| f.data_offset() + t.offset + t.n_bytes())
        .max()
        .unwrap();
    for cut in 0..bytes.len() {
        let (path, r) = open_bytes(&bytes[..cut]);
        if cut < data_end {
            let e = r
                .err()
                .unwrap_or_else(|| panic!("truncated at {cut} but opened"));
            assert!(matches!(e, Error::Format { .. }), "cut {cut}: {e:?}");
        } else {
            // Only the padding after the last tensor is missing.
            assert!(r.is_ok(), "cut {cut}");
        }
        std::fs::remove_file(path).ok();
    }
}

#[test]
fn bad_header_fields() {
    let good = tiny_bytes();

    let mut b = good.clone();
    b[0] = b'X';
    expect_format_error(&b, "not a GGUF file");
    expect_format_error(b"GGU", "not a GGUF file");
    expect_format_error(b"", "not a GGUF file");

    for (version, needle) in [(1u32, "version 1"), (4, "version 4"), (0, "version 0")] {
        let mut b = good.clone();
        put_u32(&mut b, 4, version);
        expect_format_error(&b, needle);
    }
    let mut b = good.clone();
    b[4..8].copy_from_slice(&3u32.to_be_bytes());
    expect_format_error(&b, "big-endian");

    // Absurd counts must fail before allocating.
    for (at, v) in [(8, u64::MAX), (8, 1 << 40), (16, u64::MAX), (16, 1 << 60)] {
        let mut b = good.clone();
        put_u64(&mut b, at, v);
        expect_format_error(&b, "corrupt count");
    }
    // Too few entries: the remaining header is then misread as something else, which must
    // also be caught (here: tensor entries parsed from metadata bytes).
    let mut b = good.clone();
    put_u64(&mut b, 16, 3);
    assert!(open_bytes(&b).1.is_err());

    // First key's string length.
    let mut b = good.clone();
    put_u64(&mut b, 24, u64::MAX);
    expect_format_error(&b, "string length");
    let mut b = good.clone();
    put_u64(&mut b, 24, 1 << 20);
    expect_format_error(&b, "string length");
}

/// Offset just after the key `key` (its length prefix and bytes).
fn after_key(bytes: &[u8], key: &str) -> usize {
    find(bytes, key.as_bytes()) + key.len()
}

#[test]
fn bad_metadata_values() {
    let good = tiny_bytes();

    // Value type.
    let mut b = good.clone();
    let at = after_key(&good, "test.u16");
    put_u32(&mut b, at, 77);
    expect_format_error(&b, "unknown value type 77");

    // Array element count and element type.
    let at = after_key(&good, "test.str_array");
    let mut b = good.clone();
    put_u64(&mut b, at + 8, 1 << 62);
    expect_format_error(&b, "corrupt count");
    let mut b = good.clone();
    put_u64(&mut b, at + 8, 1000);
    expect_format_error(&b, "corrupt count");
    let mut b = good.clone();
    put_u32(&mut b, at + 4, 42);
    expect_format_error(&b, "element type 42");
    // An element's string length.
    let mut b = good.clone();
    put_u64(&mut b, at + 16, u64::MAX - 3);
    expect_format_error(&b, "string length");

    // Bool byte.
    let mut b = good.clone();
    let at = after_key(&good, "test.true");
    b[at + 4] = 2;
    expect_format_error(&b, "bool");

    // Alignment that is not a power of two.
    let mut b = good.clone();
    let at = after_key(&good, "general.alignment");
    put_u32(&mut b, at + 4, 48);
    expect_format_error(&b, "alignment");
    put_u32(&mut b, at + 4, 0);
    expect_format_error(&b, "alignment");

    // Duplicate key: rename test.u16 to test.u8 (same length? no): rename test.i8 -> test.u8.
    let mut b = good.clone();
    let at = find(&good, b"test.i8");
    b[at + 5] = b'u';
    expect_format_error(&b, "duplicate metadata key");

    // Invalid UTF-8 in a key.
    let mut b = good.clone();
    let at = find(&good, b"test.i16");
    b[at] = 0xff;
    expect_format_error(&b, "UTF-8");
}

/// Offset of tensor `name`'s `n_dims` field in the tensor directory.
fn tensor_entry(bytes: &[u8], name: &str) -> usize {
    // Tensor names appear once, in the directory, after the metadata.
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    find(bytes, &needle) + needle.len()
}

#[test]
fn bad_tensor_entries() {
    let good = tiny_bytes();
    let at = tensor_entry(&good, "plain.f32"); // n_dims = 2, dims [5, 3], type, offset
    let (dims_at, type_at, offset_at) = (at + 4, at + 4 + 16, at + 4 + 16 + 4);

    let mut b = good.clone();
    put_u32(&mut b, at, 1000);
    expect_format_error(&b, "dimensions");

    let mut b = good.clone();
    put_u64(&mut b, dims_at, u64::MAX);
    expect_format_error(&b, "overflow");

    let mut b = good.clone();
    put_u64(&mut b, dims_at, 1 << 40);
    expect_format_error(&b, "past the end");

    let mut b = good.clone();
    put_u32(&mut b, type_at, 99);
    expect_format_error(&b, "type id 99");

    let mut b = good.clone();
    put_u32(&mut b, type_at, 4); // Q4_2, removed from ggml
    match open_bytes(&b).1 {
        Err(Error::UnsupportedQuant {
            name,
            id: 4,
            tensor,
        }) => {
            assert!(name.contains("Q4_2"), "{name}");
            assert_eq!(tensor, "plain.f32");
        }
        other => panic!("{other:?}"),
    }

    let mut b = good.clone();
    put_u32(&mut b, type_at, GgmlType::Q8_0.id()); // row of 5 is not a whole block
    expect_format_error(&b, "block size");

    let offset = u64::from_le_bytes(good[offset_at..offset_at + 8].try_into().unwrap());
    let mut b = good.clone();
    put_u64(&mut b, offset_at, offset + 4);
    expect_format_error(&b, "not a multiple of the alignment");

    let mut b = good.clone();
    put_u64(&mut b, offset_at, 1 << 40);
    expect_format_error(&b, "past the end");

    let mut b = good.clone();
    put_u64(&mut b, offset_at, u64::MAX - 63);
    assert!(open_bytes(&b).1.is_err());

    // Two tensors with the same name.
    let mut b = good.clone();
    let at = find(&good, b"blk.0.q8_0");
    b[at..at + 10].copy_from_slice(b"blk.1.q4_k");
    // Different lengths would misparse; both names are 10 bytes, so this is a clean duplicate.
    expect_format_error(&b, "duplicate tensor");
}

#[test]
fn random_corruption_never_panics() {
    let good = tiny_bytes();
    let header_len = GgufFile::open(&fixtures().join("tiny.gguf"))
        .unwrap()
        .data_offset();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut opened = 0;
    for round in 0..3000 {
        let mut b = good.clone();
        for _ in 0..1 + round % 4 {
            let at = (next() as usize) % header_len;
            b[at] = next() as u8;
        }
        let (path, r) = open_bytes(&b);
        if let Ok(f) = r {
            opened += 1;
            for t in f.tensor_infos() {
                let _ = f.tensor_f32(&t.name);
            }
            for k in f.metadata().keys() {
                let _ = f.get_str_array(k);
                let _ = f.get_u32(k);
            }
        }
        std::fs::remove_file(path).ok();
    }
    // Some flips land in string contents and leave the file readable.
    assert!(opened > 0);
}

// ---- real checkpoints (only with MODELS_DIR) -----------------------------------------------

fn value_hash(values: &[f32]) -> u64 {
    values.iter().enumerate().fold(0u64, |h, (i, v)| {
        let m = (i as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(1);
        h.wrapping_add((v.to_bits() as u64).wrapping_mul(m))
    })
}

#[test]
fn real_checkpoints_match_gguf_py() {
    let Some(dir) = std::env::var_os("MODELS_DIR") else {
        eprintln!("skipped: set MODELS_DIR to shared/models/fetch.sh's output to check real GGUFs");
        return;
    };
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("real_models.json")).unwrap(),
    )
    .unwrap();
    for (model, entry) in json.as_object().unwrap() {
        let path = Path::new(&dir).join(entry["file"].as_str().unwrap());
        if !path.is_file() {
            eprintln!("skipped {model}: {} not found", path.display());
            continue;
        }
        let f = GgufFile::open(&path).unwrap();
        for (name, t) in entry["tensors"].as_object().unwrap() {
            let start = std::time::Instant::now();
            let (shape, values) = f.tensor_f32(name).unwrap();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "{model} {name} {} {shape:?}: {:.1} M values in {secs:.3}s",
                t["type"],
                values.len() as f64 / 1e6
            );
            let want_shape: Vec<usize> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(shape, want_shape, "{model} {name}");
            assert_eq!(
                value_hash(&values),
                t["hash"].as_u64().unwrap(),
                "{model} {name}"
            );
        }
    }
}
