//! Classification metrics and the JSONL metrics log written during training.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// Fraction of positions where `pred` equals `gold`; 0.0 when both are empty.
///
/// # Panics
/// When `pred` and `gold` differ in length (a caller bug, not a data problem).
pub fn accuracy(pred: &[usize], gold: &[usize]) -> f64 {
    assert_eq!(
        pred.len(),
        gold.len(),
        "accuracy: {} predictions for {} gold labels",
        pred.len(),
        gold.len()
    );
    if gold.is_empty() {
        return 0.0;
    }
    let correct = pred.iter().zip(gold).filter(|(p, g)| p == g).count();
    correct as f64 / gold.len() as f64
}

/// Macro-averaged F1: the unweighted mean of the per-class F1 scores.
///
/// Only classes that occur in `gold` or in `pred` are averaged; a class absent from both is
/// left out rather than counted as 0 (or 1). This is what scikit-learn's
/// `f1_score(gold, pred, average="macro")` computes when `labels` is not given (it infers the
/// classes from the data), so e.g. a dev set lacking a class scores the same here and there. A
/// class that occurs but is never predicted correctly scores 0 (sklearn's `zero_division`
/// default, without the warning). `num_labels` only sizes the counts; labels beyond it are
/// still counted. Returns 0.0 when both slices are empty.
///
/// # Panics
/// When `pred` and `gold` differ in length (a caller bug, not a data problem).
pub fn macro_f1(pred: &[usize], gold: &[usize], num_labels: usize) -> f64 {
    assert_eq!(
        pred.len(),
        gold.len(),
        "macro_f1: {} predictions for {} gold labels",
        pred.len(),
        gold.len()
    );
    let classes = pred
        .iter()
        .chain(gold)
        .map(|&l| l + 1)
        .max()
        .unwrap_or(0)
        .max(num_labels);
    // per class: true positives, predicted count, gold count
    let mut tp = vec![0usize; classes];
    let mut predicted = vec![0usize; classes];
    let mut actual = vec![0usize; classes];
    for (&p, &g) in pred.iter().zip(gold) {
        predicted[p] += 1;
        actual[g] += 1;
        if p == g {
            tp[p] += 1;
        }
    }
    let mut sum = 0.0;
    let mut present = 0usize;
    for c in 0..classes {
        let denominator = predicted[c] + actual[c];
        if denominator == 0 {
            continue;
        }
        present += 1;
        // F1 = 2PR / (P + R) = 2 TP / (2 TP + FP + FN)
        sum += 2.0 * tp[c] as f64 / denominator as f64;
    }
    if present == 0 {
        0.0
    } else {
        sum / present as f64
    }
}

/// An append-only JSONL file of metric records (one JSON object per line), flushed after every
/// record so a crash loses at most the record being written.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

/// Creates `path`'s parent directory if it has one.
fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))
        }
        _ => Ok(()),
    }
}

impl MetricsLog {
    /// Starts a new log at `path` (creating its directory), replacing any existing file.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        create_parent(path)?;
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Opens `path` to add records after the existing ones (resuming a run); creates it when
    /// absent. A last line cut short by a crash (no final newline) is removed first, so the
    /// file stays valid JSONL.
    pub fn append(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        create_parent(path)?;
        let io = |e| Error::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1)).map_err(io)?;
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                let mut content = Vec::new();
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                file.read_to_end(&mut content).map_err(io)?;
                let keep = content
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                file.set_len(keep as u64).map_err(io)?;
            }
        }
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The log's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `record` as one line and flushes it to the file.
    pub fn log(&mut self, record: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| Error::data(&self.path, None, format!("cannot serialize record: {e}")))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| Error::io(&self.path, e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn accuracy_cases() {
        // sklearn docs: accuracy_score([0, 1, 2, 3], [0, 2, 1, 3]) == 0.5
        assert!(close(accuracy(&[0, 2, 1, 3], &[0, 1, 2, 3]), 0.5));
        assert!(close(accuracy(&[1, 1, 1], &[1, 1, 1]), 1.0));
        assert!(close(accuracy(&[0, 0, 0], &[1, 1, 0]), 1.0 / 3.0));
        assert_eq!(accuracy(&[], &[]), 0.0);
    }

    #[test]
    fn macro_f1_sklearn_cases() {
        // sklearn docs: f1_score([0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 0, 1], average="macro")
        // == 0.26666...: class 0 has F1 0.8, classes 1 and 2 have 0.
        let gold = [0, 1, 2, 0, 1, 2];
        let pred = [0, 2, 1, 0, 0, 1];
        assert!(close(macro_f1(&pred, &gold, 3), 0.8 / 3.0));
        // all one class predicted: class 0 P = 1/2, R = 1 -> F1 2/3; class 1 -> 0
        assert!(close(macro_f1(&[0, 0, 0, 0], &[0, 0, 1, 1], 2), 1.0 / 3.0));
        assert!(close(macro_f1(&[0, 1, 1, 0], &[0, 1, 1, 0], 2), 1.0));
        // hand computed: class 0 TP 2 FP 1 FN 1 -> 4/6; class 1 TP 1 FP 1 FN 1 -> 2/4
        assert!(close(
            macro_f1(&[0, 0, 1, 0, 1], &[0, 0, 0, 1, 1], 2),
            (4.0 / 6.0 + 0.5) / 2.0
        ));
        assert_eq!(macro_f1(&[], &[], 2), 0.0);
    }

    #[test]
    fn macro_f1_skips_absent_classes() {
        // class 1 occurs in neither: averaged over classes 0 (F1 0.8) and 2 (F1 2/3), as
        // sklearn's f1_score([0, 0, 2, 2], [0, 0, 2, 0], average="macro") == 0.7333...
        let gold = [0, 0, 2, 2];
        let pred = [0, 0, 2, 0];
        let expected = (0.8 + 2.0 / 3.0) / 2.0;
        assert!(close(macro_f1(&pred, &gold, 3), expected));
        assert!(close(macro_f1(&pred, &gold, 10), expected));
        // a class only predicted counts (as 0)
        assert!(close(macro_f1(&[0, 1], &[0, 0], 2), (2.0 / 3.0) / 2.0));
        // labels beyond num_labels are still counted
        assert!(close(macro_f1(&[0, 3], &[0, 3], 2), 1.0));
    }

    #[test]
    fn metrics_log_create_append_and_repair() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/metrics.jsonl");
        let mut log = MetricsLog::create(&path).unwrap();
        log.log(&json!({"step": 1, "loss": 0.5})).unwrap();
        log.log(&json!({"step": 2, "dev_metric": 0.75, "metric_name": "accuracy"}))
            .unwrap();
        assert_eq!(log.path(), path);
        // readable before drop: every record is flushed
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                json!({"step": 1, "loss": 0.5}),
                json!({"step": 2, "dev_metric": 0.75, "metric_name": "accuracy"})
            ]
        );
        drop(log);

        let mut log = MetricsLog::append(&path).unwrap();
        log.log(&json!({"step": 3, "loss": 0.25})).unwrap();
        drop(log);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);

        // a torn last line is dropped on resume
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"step\": 4, \"lo").unwrap();
        drop(f);
        let mut log = MetricsLog::append(&path).unwrap();
        log.log(&json!({"step": 4, "loss": 0.125})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            serde_json::from_str::<Value>(lines[3]).unwrap(),
            json!({"step": 4, "loss": 0.125})
        );

        // create replaces; append creates
        MetricsLog::create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let other = dir.path().join("new.jsonl");
        MetricsLog::append(&other)
            .unwrap()
            .log(&json!({"a": 1}))
            .unwrap();
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "{\"a\":1}\n"); // single key
    }
}
