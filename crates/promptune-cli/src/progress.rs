//! The training progress bar: a [`TrainObserver`] drawing on stderr.

use promptune::train::trainer::TrainObserver;

/// Steps done, loss, learning rate and throughput as a bar; dev metrics printed above it.
pub struct ProgressBar {
    bar: indicatif::ProgressBar,
}

impl ProgressBar {
    /// A hidden bar until training starts.
    pub fn new() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps [{elapsed}<{eta}] {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Self { bar }
    }
}

impl TrainObserver for ProgressBar {
    fn started(&mut self, step: usize, total_steps: usize) {
        self.bar.set_length(total_steps as u64);
        self.bar.set_position(step as u64);
    }

    fn stepped(&mut self, step: usize, loss: f64, lr: f64, examples_per_second: f64) {
        self.bar.set_position(step as u64);
        self.bar.set_message(format!(
            "loss {loss:.4} lr {lr:.2e} {examples_per_second:.1} ex/s"
        ));
    }

    fn evaluated(&mut self, step: usize, metric_name: &str, metric: f64) {
        self.bar
            .println(format!("step {step}: dev {metric_name} {metric:.4}"));
    }

    fn finished(&mut self) {
        self.bar.finish_and_clear();
    }
}
