//! Dequantization of ggml tensor data to `f32`.
//!
//! Each supported [`GgmlType`] stores its values in fixed-size blocks (one element for the float
//! types, 32 or 256 for the quantized ones); the block layouts follow ggml's `ggml-common.h`. Every
//! decoder computes with `f32` in the same order of operations as ggml's reference C code (and
//! gguf-py's numpy port), so results are bit-identical to theirs.
//!
//! Large inputs are split into groups of blocks that are decoded in parallel with rayon.

use rayon::prelude::*;

use super::gguf::GgmlType;

/// Why [`dequantize_into`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DequantError {
    /// This crate has no decoder for the type.
    Unsupported(GgmlType),
    /// The byte or element count does not match whole blocks of the type.
    Length {
        /// The type being decoded.
        ty: GgmlType,
        /// Bytes given.
        bytes: usize,
        /// Output elements given.
        elements: usize,
    },
}

impl std::fmt::Display for DequantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DequantError::Unsupported(ty) => write!(f, "no decoder for ggml type {}", ty.name()),
            DequantError::Length {
                ty,
                bytes,
                elements,
            } => write!(
                f,
                "{bytes} bytes of {} data do not hold exactly {elements} elements",
                ty.name()
            ),
        }
    }
}

impl std::error::Error for DequantError {}

/// Whether [`dequantize_into`] can decode `ty`.
pub fn is_supported(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        F32 | F16
            | BF16
            | F64
            | I8
            | I16
            | I32
            | Q4_0
            | Q4_1
            | Q5_0
            | Q5_1
            | Q8_0
            | Q2_K
            | Q3_K
            | Q4_K
            | Q5_K
            | Q6_K
    )
}

/// Decodes `data` (whole blocks of type `ty`) into a new vector of `n_elements` values.
pub fn dequantize(ty: GgmlType, data: &[u8], n_elements: usize) -> Result<Vec<f32>, DequantError> {
    check(ty, data.len(), n_elements)?;
    let mut out = vec![0f32; n_elements];
    dequantize_into(ty, data, &mut out)?;
    Ok(out)
}

/// Decodes `data` (whole blocks of type `ty`) into `out`, whose length must be the number of
/// elements `data` holds.
pub fn dequantize_into(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<(), DequantError> {
    check(ty, data.len(), out.len())?;
    use GgmlType::*;
    match ty {
        F32 => run::<4, 1>(data, out, |b, y| y[0] = f32::from_le_bytes(*b)),
        F16 => run::<2, 1>(data, out, |b, y| y[0] = f16(*b)),
        BF16 => run::<2, 1>(data, out, |b, y| {
            y[0] = f32::from_bits((u16::from_le_bytes(*b) as u32) << 16)
        }),
        F64 => run::<8, 1>(data, out, |b, y| y[0] = f64::from_le_bytes(*b) as f32),
        I8 => run::<1, 1>(data, out, |b, y| y[0] = b[0] as i8 as f32),
        I16 => run::<2, 1>(data, out, |b, y| y[0] = i16::from_le_bytes(*b) as f32),
        I32 => run::<4, 1>(data, out, |b, y| y[0] = i32::from_le_bytes(*b) as f32),
        Q4_0 => run::<18, 32>(data, out, q4_0),
        Q4_1 => run::<20, 32>(data, out, q4_1),
        Q5_0 => run::<22, 32>(data, out, q5_0),
        Q5_1 => run::<24, 32>(data, out, q5_1),
        Q8_0 => run::<34, 32>(data, out, q8_0),
        Q2_K => run::<84, 256>(data, out, q2_k),
        Q3_K => run::<110, 256>(data, out, q3_k),
        Q4_K => run::<144, 256>(data, out, q4_k),
        Q5_K => run::<176, 256>(data, out, q5_k),
        Q6_K => run::<210, 256>(data, out, q6_k),
        other => return Err(DequantError::Unsupported(other)),
    }
    Ok(())
}

/// Checks that `bytes` bytes of `ty` hold exactly `elements` elements.
fn check(ty: GgmlType, bytes: usize, elements: usize) -> Result<(), DequantError> {
    if !is_supported(ty) {
        return Err(DequantError::Unsupported(ty));
    }
    let (Some(block), Some(size)) = (ty.block_size(), ty.type_size()) else {
        return Err(DequantError::Unsupported(ty));
    };
    let ok = elements.is_multiple_of(block) && (elements / block).checked_mul(size) == Some(bytes);
    if ok {
        Ok(())
    } else {
        Err(DequantError::Length {
            ty,
            bytes,
            elements,
        })
    }
}

/// Output elements per parallel task.
const GROUP_ELEMENTS: usize = 1 << 16;

/// Applies `f` to every (input block, output block) pair, in parallel for large inputs.
fn run<const IN: usize, const OUT: usize>(
    data: &[u8],
    out: &mut [f32],
    f: impl Fn(&[u8; IN], &mut [f32; OUT]) + Sync,
) {
    let (blocks, _) = data.as_chunks::<IN>();
    let (outs, _) = out.as_chunks_mut::<OUT>();
    let group = (GROUP_ELEMENTS / OUT).max(1);
    if blocks.len() <= group {
        blocks
            .iter()
            .zip(outs.iter_mut())
            .for_each(|(b, y)| f(b, y));
    } else {
        blocks
            .par_chunks(group)
            .zip(outs.par_chunks_mut(group))
            .for_each(|(bs, ys)| {
                bs.iter().zip(ys.iter_mut()).for_each(|(b, y)| f(b, y));
            });
    }
}

#[inline(always)]
fn f16(b: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16([b[i], b[i + 1]])
}

/// Q4_0: `d: f16, qs: [u8; 16]`; `x = (nibble - 8) * d`, low nibbles first.
fn q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: `d: f16, m: f16, qs: [u8; 16]`; `x = nibble * d + m`.
fn q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0x0F) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// Q5_0: `d: f16, qh: u32, qs: [u8; 16]`; fifth bits in `qh`; `x = (q - 16) * d`.
fn q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        let x0 = (((qs[j] & 0x0F) as u32 | h0) as i32) - 16;
        let x1 = (((qs[j] >> 4) as u32 | h1) as i32) - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

/// Q5_1: `d: f16, m: f16, qh: u32, qs: [u8; 16]`; `x = q * d + m`.
fn q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        let x0 = (qs[j] & 0x0F) as u32 | h0;
        let x1 = (qs[j] >> 4) as u32 | h1;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

/// Q8_0: `d: f16, qs: [i8; 32]`; `x = q * d`.
fn q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        y[j] = (b[2 + j] as i8) as f32 * d;
    }
}

/// Q2_K: `scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16`; 16 sub-blocks of 16 with a 4-bit
/// scale and a 4-bit min each; 2-bit quants.
fn q2_k(b: &[u8; 84], y: &mut [f32; 256]) {
    let scales = &b[0..16];
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    let mut is = 0;
    for n in 0..2 {
        let q = &b[16 + 32 * n..16 + 32 * n + 32];
        let y = &mut y[128 * n..128 * n + 128];
        for j in 0..4 {
            let shift = 2 * j;
            for half in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0x0F) as f32;
                let ml = dmin * (sc >> 4) as f32;
                for l in 0..16 {
                    let qv = (q[16 * half + l] >> shift) & 3;
                    y[32 * j + 16 * half + l] = dl * qv as f32 - ml;
                }
            }
        }
    }
}

/// Q3_K: `hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16`; 6-bit signed scales for 16
/// sub-blocks of 16; 3-bit quants (2 low bits in `qs`, high bit in `hmask`, set meaning +0).
fn q3_k(b: &[u8; 110], y: &mut [f32; 256]) {
    let hm = &b[0..32];
    let d_all = f16_at(b, 108);
    let sc = &b[96..108];
    let mut scales = [0i8; 16];
    for (i, s) in scales.iter_mut().enumerate() {
        // Low 4 bits: nibble i % 8 of bytes 0..8; high 2 bits: bits 2*(i/4) of byte 8 + i%4.
        let low = if i < 8 { sc[i] & 0x0F } else { sc[i - 8] >> 4 };
        let high = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
        *s = ((low | (high << 4)) as i8).wrapping_sub(32);
    }
    let mut is = 0;
    let mut m: u8 = 1;
    for n in 0..2 {
        let q = &b[32 + 32 * n..32 + 32 * n + 32];
        let y = &mut y[128 * n..128 * n + 128];
        for j in 0..4 {
            let shift = 2 * j;
            for half in 0..2 {
                let dl = d_all * scales[is] as f32;
                is += 1;
                for l in 0..16 {
                    let k = 16 * half + l;
                    let low = ((q[k] >> shift) & 3) as i8;
                    let qv = low - if hm[k] & m != 0 { 0 } else { 4 };
                    y[32 * j + k] = dl * qv as f32;
                }
            }
            m <<= 1;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) packed in the 12 bytes `q` of a Q4_K/Q5_K block.
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K: `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`; 8 sub-blocks of 32 with 6-bit
/// scales and mins; `x = d * sc * q - dmin * m`.
fn q4_k(b: &[u8; 144], y: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    for j in 0..4 {
        let q = &b[16 + 32 * j..16 + 32 * j + 32];
        let (sc1, m1) = scale_min_k4(2 * j, scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let y = &mut y[64 * j..64 * j + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// Q5_K: `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]`; as Q4_K with a fifth
/// bit per value in `qh`.
fn q5_k(b: &[u8; 176], y: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    for j in 0..4 {
        let ql = &b[48 + 32 * j..48 + 32 * j + 32];
        let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
        let (sc1, m1) = scale_min_k4(2 * j, scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let y = &mut y[64 * j..64 * j + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * ((ql[l] & 0x0F) + h1) as f32 - m1;
            y[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
    }
}

/// Q6_K: `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`; 16 sub-blocks of 16 with 8-bit
/// scales; 6-bit quants centred on 32; `x = d * sc * q`.
fn q6_k(b: &[u8; 210], y: &mut [f32; 256]) {
    let d = f16_at(b, 208);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        let y = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_partial_blocks_and_unknown_types() {
        assert!(matches!(
            dequantize(GgmlType::Q4_0, &[0u8; 17], 32),
            Err(DequantError::Length { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::Q4_0, &[0u8; 18], 31),
            Err(DequantError::Length { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::IQ2_XXS, &[0u8; 66], 256),
            Err(DequantError::Unsupported(GgmlType::IQ2_XXS))
        ));
        assert!(dequantize(GgmlType::F32, &[], 0).unwrap().is_empty());
    }

    #[test]
    fn float_types() {
        let v = dequantize(GgmlType::F32, &1.5f32.to_le_bytes(), 1).unwrap();
        assert_eq!(v, [1.5]);
        let v = dequantize(GgmlType::F16, &half::f16::from_f32(-2.0).to_le_bytes(), 1).unwrap();
        assert_eq!(v, [-2.0]);
        let v = dequantize(GgmlType::BF16, &half::bf16::from_f32(3.0).to_le_bytes(), 1).unwrap();
        assert_eq!(v, [3.0]);
    }

    #[test]
    fn q8_0_by_hand() {
        let mut b = vec![0u8; 34];
        b[..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        for j in 0..32 {
            b[2 + j] = (j as i8 - 16) as u8;
        }
        let v = dequantize(GgmlType::Q8_0, &b, 32).unwrap();
        for (j, x) in v.iter().enumerate() {
            assert_eq!(*x, (j as f32 - 16.0) * 0.5);
        }
    }

    #[test]
    fn parallel_path_matches_sequential() {
        // Enough Q4_0 blocks to take the parallel path; compare with per-block decoding.
        let n_blocks = 3 * GROUP_ELEMENTS / 32 + 5;
        let data: Vec<u8> = (0..n_blocks * 18)
            .map(|i| {
                if i % 18 == 1 {
                    0x3c
                } else {
                    (i * 7 % 251) as u8
                }
            })
            .collect();
        let all = dequantize(GgmlType::Q4_0, &data, n_blocks * 32).unwrap();
        for (k, block) in data.chunks_exact(18).enumerate() {
            let one = dequantize(GgmlType::Q4_0, block, 32).unwrap();
            assert_eq!(&all[k * 32..k * 32 + 32], &one[..]);
        }
    }
}
