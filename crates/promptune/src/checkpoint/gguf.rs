//! A reader for GGUF files (versions 2 and 3), the single-file checkpoint format of llama.cpp.
//!
//! Layout of a file (all little-endian):
//!
//! ```text
//! "GGUF" | version: u32 | tensor_count: u64 | kv_count: u64
//! kv_count x   (key: string, value_type: u32, value)
//! tensor_count x (name: string, n_dims: u32, dims: [u64; n_dims], ggml_type: u32, offset: u64)
//! padding to `general.alignment` (default 32)
//! tensor data; each tensor at data_start + offset, offsets multiples of the alignment
//! ```
//!
//! where a string is a `u64` byte length and UTF-8 bytes, and an array value is an element type
//! (`u32`), a count (`u64`) and the elements.
//!
//! [`GgufFile::open`] memory-maps the file, parses the header and checks every count, length,
//! type and tensor extent against the file's size before allocating anything proportional to it,
//! so a truncated or corrupt file gives an [`Error::Format`] naming the file and the problem.
//! Tensor data is decoded on demand by [`GgufFile::tensor_f32`].

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::dequant::{self, DequantError};
use crate::error::{Error, Result};

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Tensor data alignment when the file has no `general.alignment`.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// Most dimensions a tensor may have (ggml itself uses at most 4).
const MAX_DIMS: usize = 8;
/// Deepest nesting of arrays in metadata values (deeper is treated as corruption).
const MAX_ARRAY_DEPTH: usize = 8;

macro_rules! ggml_types {
    ($($(#[$doc:meta])* $name:ident = $id:literal, $layout:expr;)*) => {
        /// A ggml tensor element type, by its id in the file. Variant names are ggml's own.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum GgmlType {
            $($(#[$doc])* $name = $id,)*
        }

        impl GgmlType {
            /// Every type ggml has ever assigned an id to, in id order.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$name,)*];

            /// The type with this id, if ggml has one.
            pub fn from_id(id: u32) -> Option<GgmlType> {
                match id {
                    $($id => Some(GgmlType::$name),)*
                    _ => None,
                }
            }

            /// ggml's name for the type, e.g. `"Q4_K"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(GgmlType::$name => stringify!($name),)*
                }
            }

            /// `(elements per block, bytes per block)`; `None` for types removed from ggml,
            /// whose layout files can no longer use.
            fn layout(self) -> Option<(usize, usize)> {
                match self {
                    $(GgmlType::$name => $layout,)*
                }
            }
        }
    };
}

ggml_types! {
    /// 32-bit float.
    F32 = 0, Some((1, 4));
    /// 16-bit IEEE float.
    F16 = 1, Some((1, 2));
    /// 4-bit, blocks of 32 with an f16 scale.
    Q4_0 = 2, Some((32, 18));
    /// 4-bit, blocks of 32 with an f16 scale and min.
    Q4_1 = 3, Some((32, 20));
    /// Removed from ggml.
    Q4_2 = 4, None;
    /// Removed from ggml.
    Q4_3 = 5, None;
    /// 5-bit, blocks of 32 with an f16 scale.
    Q5_0 = 6, Some((32, 22));
    /// 5-bit, blocks of 32 with an f16 scale and min.
    Q5_1 = 7, Some((32, 24));
    /// 8-bit, blocks of 32 with an f16 scale.
    Q8_0 = 8, Some((32, 34));
    /// 8-bit, blocks of 32 with an f16 scale and sum (intermediate type).
    Q8_1 = 9, Some((32, 40));
    /// 2-bit k-quant, super-blocks of 256.
    Q2_K = 10, Some((256, 84));
    /// 3-bit k-quant, super-blocks of 256.
    Q3_K = 11, Some((256, 110));
    /// 4-bit k-quant, super-blocks of 256.
    Q4_K = 12, Some((256, 144));
    /// 5-bit k-quant, super-blocks of 256.
    Q5_K = 13, Some((256, 176));
    /// 6-bit k-quant, super-blocks of 256.
    Q6_K = 14, Some((256, 210));
    /// 8-bit k-quant (intermediate type).
    Q8_K = 15, Some((256, 292));
    /// i-quant.
    IQ2_XXS = 16, Some((256, 66));
    /// i-quant.
    IQ2_XS = 17, Some((256, 74));
    /// i-quant.
    IQ3_XXS = 18, Some((256, 98));
    /// i-quant.
    IQ1_S = 19, Some((256, 50));
    /// i-quant, non-linear 4-bit.
    IQ4_NL = 20, Some((32, 18));
    /// i-quant.
    IQ3_S = 21, Some((256, 110));
    /// i-quant.
    IQ2_S = 22, Some((256, 82));
    /// i-quant.
    IQ4_XS = 23, Some((256, 136));
    /// 8-bit integer.
    I8 = 24, Some((1, 1));
    /// 16-bit integer.
    I16 = 25, Some((1, 2));
    /// 32-bit integer.
    I32 = 26, Some((1, 4));
    /// 64-bit integer.
    I64 = 27, Some((1, 8));
    /// 64-bit float.
    F64 = 28, Some((1, 8));
    /// i-quant.
    IQ1_M = 29, Some((256, 56));
    /// bfloat16.
    BF16 = 30, Some((1, 2));
    /// Removed from ggml (repacked Q4_0).
    Q4_0_4_4 = 31, None;
    /// Removed from ggml (repacked Q4_0).
    Q4_0_4_8 = 32, None;
    /// Removed from ggml (repacked Q4_0).
    Q4_0_8_8 = 33, None;
    /// Ternary.
    TQ1_0 = 34, Some((256, 54));
    /// Ternary.
    TQ2_0 = 35, Some((256, 66));
    /// Removed from ggml (repacked IQ4_NL).
    IQ4_NL_4_4 = 36, None;
    /// Removed from ggml (repacked IQ4_NL).
    IQ4_NL_4_8 = 37, None;
    /// Removed from ggml (repacked IQ4_NL).
    IQ4_NL_8_8 = 38, None;
    /// Microscaling FP4.
    MXFP4 = 39, Some((32, 17));
    /// NVIDIA FP4.
    NVFP4 = 40, Some((64, 36));
    /// 1-bit.
    Q1_0 = 41, Some((128, 18));
}

impl GgmlType {
    /// The id stored in files.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Elements per block (1 for plain float and integer types); `None` for removed types.
    pub fn block_size(self) -> Option<usize> {
        self.layout().map(|(b, _)| b)
    }

    /// Bytes per block; `None` for removed types.
    pub fn type_size(self) -> Option<usize> {
        self.layout().map(|(_, s)| s)
    }

    /// Whether [`GgufFile::tensor_f32`] can decode tensors of this type.
    pub fn is_supported(self) -> bool {
        dequant::is_supported(self)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A metadata value. Arrays hold values of one element type (possibly nested arrays).
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// Type 0.
    U8(u8),
    /// Type 1.
    I8(i8),
    /// Type 2.
    U16(u16),
    /// Type 3.
    I16(i16),
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 7.
    Bool(bool),
    /// Type 8. Invalid UTF-8 in a value is replaced by U+FFFD.
    String(String),
    /// Type 9.
    Array(Vec<GgufValue>),
    /// Type 10.
    U64(u64),
    /// Type 11.
    I64(i64),
    /// Type 12.
    F64(f64),
}

impl GgufValue {
    /// A short description of the value's type, e.g. `"u32"` or `"array of string"`.
    pub fn type_name(&self) -> String {
        match self {
            GgufValue::U8(_) => "u8".into(),
            GgufValue::I8(_) => "i8".into(),
            GgufValue::U16(_) => "u16".into(),
            GgufValue::I16(_) => "i16".into(),
            GgufValue::U32(_) => "u32".into(),
            GgufValue::I32(_) => "i32".into(),
            GgufValue::F32(_) => "f32".into(),
            GgufValue::Bool(_) => "bool".into(),
            GgufValue::String(_) => "string".into(),
            GgufValue::U64(_) => "u64".into(),
            GgufValue::I64(_) => "i64".into(),
            GgufValue::F64(_) => "f64".into(),
            GgufValue::Array(items) => match items.first() {
                Some(first) => format!("array of {}", first.type_name()),
                None => "empty array".into(),
            },
        }
    }

    /// The value as an `i128` if it is an integer (of any width or signedness).
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            GgufValue::U8(v) => v.into(),
            GgufValue::I8(v) => v.into(),
            GgufValue::U16(v) => v.into(),
            GgufValue::I16(v) => v.into(),
            GgufValue::U32(v) => v.into(),
            GgufValue::I32(v) => v.into(),
            GgufValue::U64(v) => v.into(),
            GgufValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as an `f64` if it is a number (float or integer).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => self.as_integer().map(|v| v as f64),
        }
    }

    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if the value is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if the value is an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Where one tensor lies in the file and how it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the fastest-varying (row length).
    pub dims: Vec<usize>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the file's data section.
    pub offset: usize,
    /// Number of elements (product of `dims`).
    pub n_elements: usize,
}

impl GgufTensorInfo {
    /// The shape in PyTorch / row-major order (ggml dims reversed).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// Bytes of data the tensor occupies (its type's layout is known once the file is open).
    pub fn n_bytes(&self) -> usize {
        self.checked_n_bytes().unwrap_or(usize::MAX)
    }

    fn checked_n_bytes(&self) -> Option<usize> {
        let (block, size) = self.ggml_type.layout()?;
        (self.n_elements / block).checked_mul(size)
    }
}

/// An open, memory-mapped GGUF file with its parsed metadata and tensor directory.
///
/// The file must not be modified by another process while it is open (it is memory-mapped).
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    alignment: usize,
    data_offset: usize,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and validates `path`: header, metadata, tensor directory and tensor extents.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < 24 {
            return Err(Error::format(
                path,
                format!("not a GGUF file: {len} bytes is shorter than the 24-byte GGUF header"),
            ));
        }
        // SAFETY: the map is read-only; like every reader of memory-mapped checkpoints we rely on
        // the file not being truncated or rewritten while open (documented on `GgufFile`).
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::parse(path.to_path_buf(), mmap)
    }

    fn parse(path: PathBuf, mmap: Mmap) -> Result<GgufFile> {
        let (version, metadata, tensors, header_end) = {
            let mut r = Reader {
                buf: &mmap,
                pos: 0,
                path: &path,
            };
            let magic = r.take(4, "magic")?;
            if magic != GGUF_MAGIC {
                return Err(Error::format(
                    &path,
                    format!("not a GGUF file: starts with {magic:02x?}, expected \"GGUF\""),
                ));
            }
            let version = r.u32("version")?;
            if version.swap_bytes() <= 3 && version > 3 {
                return Err(r.error("big-endian GGUF files are not supported"));
            }
            if version == 1 {
                return Err(r.error("GGUF version 1 is not supported (only versions 2 and 3)"));
            }
            if !(2..=3).contains(&version) {
                return Err(r.error(format!(
                    "unsupported GGUF version {version} (only versions 2 and 3)"
                )));
            }
            let n_tensors = r.u64("tensor count")?;
            let n_kv = r.u64("metadata count")?;
            // Every key-value pair takes at least 13 bytes, every tensor entry at least 24.
            r.check_count(n_kv, 13, "metadata entries")?;
            r.check_count(n_tensors, 24, "tensor entries")?;

            let mut metadata = BTreeMap::new();
            for i in 0..n_kv {
                let key = r.key(&format!("metadata key #{i}"))?;
                let ty = r.u32(&format!("type of metadata `{key}`"))?;
                let value = r.value(ty, 0, &key)?;
                if metadata.insert(key.clone(), value).is_some() {
                    return Err(r.error(format!("duplicate metadata key `{key}`")));
                }
            }

            let mut tensors = Vec::with_capacity(n_tensors as usize);
            for i in 0..n_tensors {
                tensors.push(r.tensor_info(i)?);
            }
            (version, metadata, tensors, r.pos)
        };

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => {
                let a = v.as_integer().ok_or_else(|| {
                    Error::format(
                        &path,
                        format!(
                            "general.alignment holds {}, expected an integer",
                            v.type_name()
                        ),
                    )
                })?;
                if a <= 0 || a > 1 << 30 || (a & (a - 1)) != 0 {
                    return Err(Error::format(
                        &path,
                        format!("general.alignment = {a} is not a power of two up to 2^30"),
                    ));
                }
                a as usize
            }
        };
        let data_offset = header_end.div_ceil(alignment) * alignment;
        let file_len = mmap.len();

        let mut by_name = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if by_name.insert(t.name.clone(), i).is_some() {
                return Err(Error::format(
                    &path,
                    format!("duplicate tensor name `{}`", t.name),
                ));
            }
            if !t.offset.is_multiple_of(alignment) {
                return Err(Error::format(
                    &path,
                    format!(
                        "tensor `{}`: data offset {} is not a multiple of the alignment {alignment}",
                        t.name, t.offset
                    ),
                ));
            }
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.checked_n_bytes()?));
            match end {
                Some(end) if end <= file_len => {}
                _ => {
                    return Err(Error::format(
                        &path,
                        format!(
                        "tensor `{}` ({} {:?}, {} bytes at data offset {}) extends past the end \
                             of the file ({file_len} bytes, data section at {data_offset}): \
                             truncated or corrupt file",
                        t.name,
                        t.ggml_type,
                        t.shape(),
                        t.n_bytes(),
                        t.offset
                    ),
                    ))
                }
            }
        }

        Ok(GgufFile {
            path,
            mmap,
            version,
            alignment,
            data_offset,
            metadata,
            tensors,
            by_name,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of tensor data (`general.alignment`, default 32).
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Absolute file offset of the data section.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// All metadata, by key.
    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }

    /// One metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// `general.architecture`, e.g. `"llama"` or `"gemma3"`.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// All tensor entries, in file order.
    pub fn tensor_infos(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The entry for tensor `name`, if present.
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw (possibly quantized) bytes of tensor `name`.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.require_tensor(name)?;
        let start = self.data_offset + info.offset;
        // Extents were checked against the file size in `open`.
        start
            .checked_add(info.n_bytes())
            .and_then(|end| self.mmap.get(start..end))
            .ok_or_else(|| Error::format(&self.path, format!("tensor `{name}` out of bounds")))
    }

    /// Tensor `name` decoded to `f32`, with its shape in PyTorch / row-major order (ggml dims
    /// reversed): a ggml `[576, 49152]` embedding comes back as `[49152, 576]`.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let info = self.require_tensor(name)?;
        let bytes = self.tensor_bytes(name)?;
        let data =
            dequant::dequantize(info.ggml_type, bytes, info.n_elements).map_err(|e| match e {
                DequantError::Unsupported(ty) => Error::UnsupportedQuant {
                    name: ty.name().to_string(),
                    id: ty.id(),
                    tensor: name.to_string(),
                },
                DequantError::Length { .. } => {
                    Error::format(&self.path, format!("tensor `{name}`: {e}"))
                }
            })?;
        Ok((info.shape(), data))
    }

    fn require_tensor(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensor_info(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            path: self.path.clone(),
        })
    }

    // ---- typed metadata getters -------------------------------------------------------------

    fn config_error(&self, message: String) -> Error {
        Error::Config {
            path: self.path.clone(),
            message,
        }
    }

    fn missing(&self, key: &str) -> Error {
        self.config_error(format!("GGUF metadata key `{key}` is missing"))
    }

    fn mistyped(&self, key: &str, value: &GgufValue, expected: &str) -> Error {
        self.config_error(format!(
            "GGUF metadata key `{key}` holds {}, expected {expected}",
            value.type_name()
        ))
    }

    fn opt_with<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        f: impl FnOnce(&'a GgufValue) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(v) => f(v)
                .map(Some)
                .ok_or_else(|| self.mistyped(key, v, expected)),
        }
    }

    fn array_with<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        f: impl Fn(&'a GgufValue) -> Option<T>,
    ) -> Result<Option<Vec<T>>> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(v) => {
                let items = v
                    .as_array()
                    .ok_or_else(|| self.mistyped(key, v, expected))?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(f(item).ok_or_else(|| {
                        self.config_error(format!(
                            "GGUF metadata key `{key}`: element {i} is {} ({item:?}), expected \
                             {expected}",
                            item.type_name()
                        ))
                    })?);
                }
                Ok(Some(out))
            }
        }
    }

    /// String value of `key`; `Ok(None)` if absent, an error if present with another type.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.opt_with(key, "a string", GgufValue::as_str)
    }

    /// Integer value of `key` as `u32` (any integer type whose value fits); `Ok(None)` if absent.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.opt_with(key, "an integer in u32 range", |v| {
            v.as_integer()?.try_into().ok()
        })
    }

    /// Integer value of `key` as `u64` (any integer type whose value fits); `Ok(None)` if absent.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.opt_with(key, "an integer in u64 range", |v| {
            v.as_integer()?.try_into().ok()
        })
    }

    /// Integer value of `key` as `i64` (any integer type whose value fits); `Ok(None)` if absent.
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>> {
        self.opt_with(key, "an integer in i64 range", |v| {
            v.as_integer()?.try_into().ok()
        })
    }

    /// Numeric value of `key` as `f32` (f32, f64 or integer); `Ok(None)` if absent.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.opt_with(key, "a number", |v| v.as_f64().map(|x| x as f32))
    }

    /// Boolean value of `key`; `Ok(None)` if absent.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.opt_with(key, "a bool", GgufValue::as_bool)
    }

    /// String-array value of `key`; `Ok(None)` if absent.
    pub fn opt_str_array(&self, key: &str) -> Result<Option<Vec<&str>>> {
        self.array_with(key, "an array of strings", GgufValue::as_str)
    }

    /// Numeric-array value of `key` as `f32`s; `Ok(None)` if absent.
    pub fn opt_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>> {
        self.array_with(key, "an array of numbers", |v| v.as_f64().map(|x| x as f32))
    }

    /// Integer-array value of `key` as `i32`s (elements of any integer type that fit);
    /// `Ok(None)` if absent.
    pub fn opt_i32_array(&self, key: &str) -> Result<Option<Vec<i32>>> {
        self.array_with(key, "an array of integers in i32 range", |v| {
            v.as_integer()?.try_into().ok()
        })
    }

    /// Integer-array value of `key` as `u32`s; `Ok(None)` if absent.
    pub fn opt_u32_array(&self, key: &str) -> Result<Option<Vec<u32>>> {
        self.array_with(key, "an array of integers in u32 range", |v| {
            v.as_integer()?.try_into().ok()
        })
    }

    /// String value of `key`; an [`Error::Config`] naming the key if absent or not a string.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.opt_str(key)?.ok_or_else(|| self.missing(key))
    }

    /// Integer value of `key` as `u32` (any integer type whose value fits).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.opt_u32(key)?.ok_or_else(|| self.missing(key))
    }

    /// Integer value of `key` as `u64` (any integer type whose value fits).
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.opt_u64(key)?.ok_or_else(|| self.missing(key))
    }

    /// Integer value of `key` as `i64` (any integer type whose value fits).
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        self.opt_i64(key)?.ok_or_else(|| self.missing(key))
    }

    /// Numeric value of `key` as `f32`.
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.opt_f32(key)?.ok_or_else(|| self.missing(key))
    }

    /// Boolean value of `key`.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.opt_bool(key)?.ok_or_else(|| self.missing(key))
    }

    /// String-array value of `key`.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.opt_str_array(key)?.ok_or_else(|| self.missing(key))
    }

    /// Numeric-array value of `key` as `f32`s.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.opt_f32_array(key)?.ok_or_else(|| self.missing(key))
    }

    /// Integer-array value of `key` as `i32`s.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.opt_i32_array(key)?.ok_or_else(|| self.missing(key))
    }

    /// Integer-array value of `key` as `u32`s.
    pub fn get_u32_array(&self, key: &str) -> Result<Vec<u32>> {
        self.opt_u32_array(key)?.ok_or_else(|| self.missing(key))
    }
}

/// A bounds-checked little-endian cursor over the mapped file.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::format(
            self.path,
            format!("{message} (at byte offset {})", self.pos),
        )
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "file truncated: reading {what} needs {n} bytes, only {} left",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Errors unless `count` items of at least `min_size` bytes each can fit in the rest of the file.
    fn check_count(&self, count: u64, min_size: u64, what: &str) -> Result<()> {
        match count.checked_mul(min_size) {
            Some(bytes) if bytes <= self.remaining() as u64 => Ok(()),
            _ => Err(self.error(format!(
                "{count} {what} cannot fit in the {} bytes left in the file: a truncated file \
                 or a corrupt count",
                self.remaining()
            ))),
        }
    }

    fn string_bytes(&mut self, what: &str) -> Result<&'a [u8]> {
        let len = self.u64(what)?;
        if len > self.remaining() as u64 {
            return Err(self.error(format!(
                "{what}: string length {len} exceeds the {} bytes left in the file",
                self.remaining()
            )));
        }
        self.take(len as usize, what)
    }

    /// A string that must be valid UTF-8 (keys and tensor names).
    fn key(&mut self, what: &str) -> Result<String> {
        let start = self.pos;
        let bytes = self.string_bytes(what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            Error::format(
                self.path,
                format!("{what} is not valid UTF-8 (at byte offset {start})"),
            )
        })
    }

    fn value(&mut self, ty: u32, depth: usize, key: &str) -> Result<GgufValue> {
        Ok(match ty {
            0 => GgufValue::U8(self.array::<1>(key)?[0]),
            1 => GgufValue::I8(self.array::<1>(key)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => GgufValue::U32(u32::from_le_bytes(self.array(key)?)),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => {
                    self.pos -= 1;
                    return Err(
                        self.error(format!("metadata `{key}`: bool byte {b} is not 0 or 1"))
                    );
                }
            },
            8 => GgufValue::String(String::from_utf8_lossy(self.string_bytes(key)?).into_owned()),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.error(format!(
                        "metadata `{key}`: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    )));
                }
                let elem_ty = self.u32(key)?;
                let count = self.u64(key)?;
                let min_size = match elem_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => {
                        return Err(self.error(format!(
                            "metadata `{key}`: unknown array element type {other}"
                        )))
                    }
                };
                self.check_count(
                    count,
                    min_size,
                    &format!("elements of metadata array `{key}`"),
                )?;
                // Grow as elements actually parse: a value is larger in memory than on disk.
                let mut items = Vec::with_capacity((count as usize).min(1 << 16));
                for _ in 0..count {
                    items.push(self.value(elem_ty, depth + 1, key)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(u64::from_le_bytes(self.array(key)?)),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(key)?)),
            other => {
                return Err(self.error(format!("metadata `{key}`: unknown value type {other}")))
            }
        })
    }

    fn tensor_info(&mut self, index: u64) -> Result<GgufTensorInfo> {
        let name = self.key(&format!("name of tensor #{index}"))?;
        let n_dims = self.u32(&format!("rank of tensor `{name}`"))? as usize;
        if n_dims > MAX_DIMS {
            return Err(self.error(format!(
                "tensor `{name}` claims {n_dims} dimensions (at most {MAX_DIMS} supported)"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims);
        let mut n_elements: usize = 1;
        for _ in 0..n_dims {
            let d = self.u64(&format!("dimensions of tensor `{name}`"))?;
            let d = usize::try_from(d).ok();
            match d.and_then(|d| n_elements.checked_mul(d).map(|n| (d, n))) {
                Some((d, n)) => {
                    dims.push(d);
                    n_elements = n;
                }
                None => {
                    return Err(self.error(format!(
                        "tensor `{name}`: element count overflows (corrupt dimensions)"
                    )))
                }
            }
        }
        let type_id = self.u32(&format!("type of tensor `{name}`"))?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
            self.error(format!(
                "tensor `{name}` has ggml type id {type_id}, unknown to this reader (corrupt file \
                 or a newer ggml)"
            ))
        })?;
        let Some((block, _)) = ggml_type.layout() else {
            return Err(Error::UnsupportedQuant {
                name: format!("{} (removed from ggml)", ggml_type.name()),
                id: type_id,
                tensor: name,
            });
        };
        let row = dims.first().copied().unwrap_or(1);
        if !row.is_multiple_of(block) {
            return Err(self.error(format!(
                "tensor `{name}`: row length {row} is not a multiple of the {} block size {block}",
                ggml_type.name()
            )));
        }
        let offset = self.u64(&format!("offset of tensor `{name}`"))?;
        let offset = usize::try_from(offset).map_err(|_| {
            self.error(format!(
                "tensor `{name}`: data offset {offset} is out of range"
            ))
        })?;
        Ok(GgufTensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_table_is_consistent() {
        for &t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        assert_eq!(GgmlType::Q4_K.name(), "Q4_K");
        assert_eq!(GgmlType::from_id(12), Some(GgmlType::Q4_K));
        assert_eq!(GgmlType::from_id(1000), None);
        assert_eq!(GgmlType::Q6_K.type_size(), Some(210));
        assert_eq!(GgmlType::Q4_2.block_size(), None);
    }

    #[test]
    fn value_conversions() {
        assert_eq!(GgufValue::I8(-3).as_integer(), Some(-3));
        assert_eq!(
            GgufValue::U64(u64::MAX).as_integer(),
            Some(u64::MAX as i128)
        );
        assert_eq!(GgufValue::F32(1.5).as_f64(), Some(1.5));
        assert_eq!(GgufValue::String("x".into()).as_integer(), None);
        assert_eq!(
            GgufValue::Array(vec![GgufValue::Bool(true)]).type_name(),
            "array of bool"
        );
    }
}
