//! Helpers shared by the integration tests: fixture paths and reading case tensors.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

/// `crates/promptune/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A case tensor read from a fixture file.
#[derive(Debug, Clone)]
pub struct CaseTensor {
    pub shape: Vec<usize>,
    pub f32: Vec<f32>,
    pub i64: Vec<i64>,
}

/// All tensors of a `cases.safetensors` file.
pub fn read_cases(path: &std::path::Path) -> HashMap<String, CaseTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("valid fixture");
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let (f, i) = match view.dtype() {
            Dtype::F32 => (
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                vec![],
            ),
            Dtype::I64 => (
                vec![],
                data.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            other => panic!("unexpected dtype {other:?} for {name}"),
        };
        out.insert(
            name,
            CaseTensor {
                shape: view.shape().to_vec(),
                f32: f,
                i64: i,
            },
        );
    }
    out
}

/// Largest absolute difference, over the entries where `keep` is true.
pub fn max_abs_diff(a: &[f32], b: &[f32], keep: impl Fn(usize) -> bool) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, (x, y))| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A classification-like loss on a forward pass: the logits of vocabulary rows 3 and 4 at
/// each row's last token, cross-entropy against row 3 (class 0), summed over the batch.
pub fn two_label_loss(
    model: &promptune::backbone::Backbone,
    mut input: promptune::backbone::ForwardInput,
) -> burn::tensor::Tensor<1> {
    let batch = input.tokens.as_ref().expect("tokens").batch;
    input.logits = promptune::backbone::LogitsRequest {
        positions: promptune::backbone::LogitPositions::Last,
        rows: Some(vec![3, 4]),
    };
    let l = model
        .forward(&input, None)
        .unwrap()
        .logits
        .unwrap()
        .reshape([batch, 2]);
    let lse = l.clone().exp().sum_dim(1).log();
    let gold = l.narrow(1, 0, 1);
    (lse - gold).sum().reshape([1])
}
