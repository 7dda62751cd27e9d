//! Learning-rate schedules: linear warm-up, then constant, linear or cosine decay to zero.

use serde::{Deserialize, Serialize};

/// Decay after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Keep the peak rate.
    Constant,
    /// Linear to zero at the last step (HF's default).
    #[default]
    Linear,
    /// Half a cosine to zero at the last step.
    Cosine,
}

/// Learning rate at optimizer step `step` (0-based) of `total`.
pub fn learning_rate(peak: f64, step: usize, warmup: usize, total: usize, decay: Decay) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).clamp(0.0, 1.0);
    match decay {
        Decay::Constant => peak,
        Decay::Linear => peak * (1.0 - progress),
        Decay::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        assert!((learning_rate(1.0, 0, 4, 10, Decay::Linear) - 0.25).abs() < 1e-12);
        assert!((learning_rate(1.0, 3, 4, 10, Decay::Linear) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, 7, 4, 10, Decay::Linear) - 0.5).abs() < 1e-12);
        assert!((learning_rate(1.0, 7, 4, 10, Decay::Cosine) - 0.5).abs() < 1e-12);
        assert!(learning_rate(1.0, 10, 4, 10, Decay::Cosine).abs() < 1e-12);
        assert_eq!(learning_rate(0.3, 9, 0, 10, Decay::Constant), 0.3);
    }
}
