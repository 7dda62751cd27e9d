//! Training progress on stderr, a [`TrainObserver`]: a bar on a terminal; under `nohup`, in CI
//! or piped to a file (stderr not a terminal), plain lines at a modest rate, as HF's Trainer
//! logs them.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use promptune::train::trainer::TrainObserver;

/// Seconds between two plain progress lines.
const PLAIN_EVERY: Duration = Duration::from_secs(15);

/// Steps done, loss, learning rate and throughput; dev metrics printed as they come.
pub struct ProgressBar {
    shown: Shown,
    total: usize,
}

enum Shown {
    Bar(indicatif::ProgressBar),
    Lines {
        started: Instant,
        first_step: usize,
        last_line: Option<Instant>,
    },
}

impl ProgressBar {
    /// A bar on a terminal (hidden until training starts), plain lines elsewhere.
    pub fn new() -> Self {
        let shown = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps [{elapsed}<{eta}] {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Shown::Bar(bar)
        } else {
            Shown::Lines {
                started: Instant::now(),
                first_step: 0,
                last_line: None,
            }
        };
        Self { shown, total: 0 }
    }
}

/// `1h02m03s`, `4m05s` or `6s`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

impl TrainObserver for ProgressBar {
    fn started(&mut self, step: usize, total_steps: usize) {
        self.total = total_steps;
        match &mut self.shown {
            Shown::Bar(bar) => {
                bar.set_length(total_steps as u64);
                bar.set_position(step as u64);
            }
            Shown::Lines {
                started,
                first_step,
                ..
            } => {
                *started = Instant::now();
                *first_step = step;
                eprintln!("training: step {step} of {total_steps}");
            }
        }
    }

    fn stepped(&mut self, step: usize, loss: f64, lr: f64, examples_per_second: f64) {
        let message = format!("loss {loss:.4} lr {lr:.2e} {examples_per_second:.1} ex/s");
        let total = self.total;
        match &mut self.shown {
            Shown::Bar(bar) => {
                bar.set_position(step as u64);
                bar.set_message(message);
            }
            Shown::Lines {
                started,
                first_step,
                last_line,
            } => {
                let due = last_line.is_none_or(|t| t.elapsed() >= PLAIN_EVERY);
                if !(due || step == total) {
                    return;
                }
                *last_line = Some(Instant::now());
                let elapsed = started.elapsed().as_secs_f64();
                let done = step.saturating_sub(*first_step).max(1) as f64;
                let eta = elapsed / done * total.saturating_sub(step) as f64;
                eprintln!(
                    "step {step}/{total} {message} elapsed {} eta {}",
                    duration(elapsed),
                    duration(eta)
                );
            }
        }
    }

    fn evaluated(&mut self, step: usize, metric_name: &str, metric: f64) {
        let line = format!("step {step}: dev {metric_name} {metric:.4}");
        match &self.shown {
            Shown::Bar(bar) => bar.println(line),
            Shown::Lines { .. } => eprintln!("{line}"),
        }
    }

    fn finished(&mut self) {
        if let Shown::Bar(bar) = &self.shown {
            bar.finish_and_clear();
        }
    }
}

/// Progress of a long pass over examples (`eval`, `predict`): a plain line on stderr every
/// [`PLAIN_EVERY`], nothing for a pass shorter than that.
pub struct PassProgress {
    started: Instant,
    last_line: Instant,
}

impl PassProgress {
    /// Starts the clock.
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last_line: now,
        }
    }

    /// `done` items of `total` are through.
    pub fn update(&mut self, done: usize, total: usize) {
        if self.last_line.elapsed() < PLAIN_EVERY || done >= total {
            return;
        }
        self.last_line = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-9);
        let eta = total.saturating_sub(done) as f64 / rate.max(1e-9);
        eprintln!(
            "{done}/{total} done, {rate:.1}/s, elapsed {} eta {}",
            duration(elapsed),
            duration(eta)
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_hours_minutes_seconds() {
        assert_eq!(super::duration(6.2), "6s");
        assert_eq!(super::duration(245.0), "4m05s");
        assert_eq!(super::duration(3723.0), "1h02m03s");
    }
}
