//! The JSONL metrics log written during training.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

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

    /// Opens the log of a run resumed from the checkpoint of optimizer step `step`: records
    /// of later steps (written after that checkpoint, by the interrupted run) are dropped
    /// (records without a step are kept), as are lines that are not JSON objects (a crash, a concurrent writer), so that the log
    /// reads as one run; then records are added after the kept ones. The file is rewritten
    /// atomically.
    pub fn resume_at(path: impl AsRef<Path>, step: usize) -> Result<Self> {
        let path = path.as_ref();
        let content = match std::fs::read(path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(path, e)),
        };
        let mut kept = Vec::new();
        for line in content.split(|&b| b == b'\n') {
            let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            // records of later steps go; records without a step are not per-step, and stay
            let at = record.get("step").and_then(Value::as_u64);
            if at.is_none_or(|s| s as usize <= step) {
                kept.extend_from_slice(line);
                kept.push(b'\n');
            }
        }
        crate::train::atomic::write_atomic(path, &kept)?;
        Self::append(path)
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

/// Reads a JSONL metrics log: one JSON value per non-blank line.
///
/// Errors when the file is missing or unreadable, or a line is not valid JSON (naming the
/// 1-based line).
pub fn read_metrics(path: impl AsRef<Path>) -> Result<Vec<Value>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.to_path_buf(),
                hint: "metrics log not found".into(),
            }
        } else {
            Error::io(path, e)
        }
    })?;
    let mut records = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::data(path, Some(i + 1), e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line)
            .map_err(|e| Error::data(path, Some(i + 1), format!("not valid JSON: {e}")))?;
        records.push(value);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resuming_keeps_the_records_up_to_the_checkpoint_and_drops_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let lines = [
            r#"{"step":1,"loss":1.0}"#,
            r#"{"step":2,"loss":0.9}"#,
            r#"{"step":2,"dev_metric":0.5}"#,
            "not json at all",
            r#"{"step":3,"loss":0.8}"#,
            r#"{"event":"note"}"#,
            r#"{"step":4,"lo"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let mut log = MetricsLog::resume_at(&path, 2).unwrap();
        log.log(&json!({ "step": 3, "loss": 0.7 })).unwrap();
        let steps: Vec<(Option<u64>, bool)> = read_metrics(&path)
            .unwrap()
            .iter()
            .map(|r| (r["step"].as_u64(), r.get("loss").is_some()))
            .collect();
        assert_eq!(
            steps,
            [
                (Some(1), true),
                (Some(2), true),
                (Some(2), false),
                (None, false),
                (Some(3), true)
            ]
        );
        assert_eq!(read_metrics(&path).unwrap()[4]["loss"], 0.7);
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

    fn records() -> Vec<Value> {
        (1..=5)
            .map(|step| json!({"step": step, "loss": 0.3 * step as f64, "lr": 1e-3}))
            .collect()
    }

    #[test]
    fn reads_metrics_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut log = MetricsLog::create(&path).unwrap();
        for r in records() {
            log.log(&r).unwrap();
        }
        let read = read_metrics(&path).unwrap();
        assert_eq!(read.len(), records().len());
        for (got, want) in read.iter().zip(records()) {
            assert_eq!(got["step"], want["step"]);
            // serde_json's default float parsing may differ in the last bit
            let (a, b) = (got["loss"].as_f64(), want["loss"].as_f64());
            assert!(
                a.zip(b).is_none_or(|(a, b)| (a - b).abs() < 1e-15),
                "{got} vs {want}"
            );
        }
        std::fs::write(&path, "{\"step\": 1}\n\n{oops\n").unwrap();
        let err = read_metrics(&path).unwrap_err().to_string();
        assert!(err.contains("m.jsonl:3: not valid JSON"), "{err}");
        assert!(matches!(
            read_metrics(dir.path().join("none")),
            Err(Error::MissingFile { .. })
        ));
    }
}
