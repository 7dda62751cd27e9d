//! Linear heads trained beside a prompt (classification, tagging, span extraction): their
//! initial host tensors and their weights read back from the trainable tensors by name.

use burn::tensor::{Device, Tensor};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::params::{HostTensor, Trainables};
use crate::{Error, Result};

/// The names of one linear head's weight `[hidden, outputs]` and bias `[outputs]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadNames {
    /// Host name of the weight.
    pub weight: &'static str,
    /// Host name of the bias.
    pub bias: &'static str,
}

/// A linear head's weights, read from trainable tensors (gradients flow back to them).
#[derive(Debug, Clone)]
pub struct LinearWeights {
    /// `[hidden, outputs]`.
    pub weight: Tensor<2>,
    /// `[outputs]`.
    pub bias: Tensor<1>,
}

impl HeadNames {
    /// Small deterministic-random weights, uniform in ±1/√hidden from `seed`, and a zero bias.
    pub fn initial(self, hidden: usize, outputs: usize, seed: u64) -> Vec<HostTensor> {
        let mut rng = StdRng::seed_from_u64(seed);
        let bound = 1.0 / (hidden.max(1) as f32).sqrt();
        let w = (0..hidden * outputs)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        vec![
            HostTensor::new(self.weight, vec![hidden, outputs], w),
            HostTensor::new(self.bias, vec![outputs], vec![0.0; outputs]),
        ]
    }

    /// The head in `params`, `None` when it holds neither tensor.
    pub fn read(self, params: &Trainables) -> Result<Option<LinearWeights>> {
        match (params.matrix(self.weight), params.vector(self.bias)) {
            (Some(weight), Some(bias)) => {
                let outputs = weight.dims()[1];
                if bias.dims()[0] != outputs {
                    return Err(Error::Shape(format!(
                        "`{}` has {} values for {outputs} outputs",
                        self.bias,
                        bias.dims()[0]
                    )));
                }
                Ok(Some(LinearWeights { weight, bias }))
            }
            _ if params.dims(self.weight).is_none() && params.dims(self.bias).is_none() => Ok(None),
            _ => Err(Error::InvalidInput(format!(
                "a head needs both `{}` (2-D) and `{}` (1-D)",
                self.weight, self.bias
            ))),
        }
    }

    /// A fresh head on `device` ([`HeadNames::initial`]), trainable on an autodiff device.
    pub fn fresh(self, hidden: usize, outputs: usize, seed: u64, device: &Device) -> LinearWeights {
        let params = Trainables::from_host(&self.initial(hidden, outputs, seed), device)
            .expect("fresh head tensors are well formed");
        self.read(&params)
            .expect("fresh head tensors are well formed")
            .expect("both tensors were made")
    }
}
