//! `promptune train` end to end through the binary: an uninterrupted run, and a run killed
//! (SIGKILL) after a checkpoint then resumed with `--resume`, end with the same prompt; the
//! finished run has its curves plotted; `serve` answers over a socket and, sent SIGTERM while a
//! request waits, answers it before it exits.

#[path = "../../promptune/tests/common/tiny.rs"]
mod tiny;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_promptune"))
}

fn write_task(dir: &Path) {
    tiny::tiny_model_with_tokenizer(&dir.join("model"));
    let mut data = String::new();
    for i in 0..64 {
        let (adj, label) = if i % 2 == 0 { ("good", 1) } else { ("bad", 0) };
        data.push_str(&format!(
            "{{\"text\": \"the movie was {adj}\", \"label\": {label}}}\n"
        ));
    }
    std::fs::write(dir.join("train.jsonl"), data).unwrap();
    let config = r#"
model = "model"
output_dir = "out"
template = "{soft*4} review: {text_a} sentiment: {mask}"
max_len = 32
[method]
init = { kind = "text", text = "positive negative" }
[verbalizer]
labels = ["negative", "positive"]
words = [["negative"], ["positive"]]
[data.train]
path = "train.jsonl"
columns = { text_a = "text" }
label_column = "label"
label_map = { "0" = "negative", "1" = "positive" }
[train]
lr = 0.05
batch_size = 8
epochs = 150
checkpoint_every = 10
"#;
    std::fs::write(dir.join("task.toml"), config).unwrap();
}

fn train(dir: &Path, out: &str, resume: bool) -> Command {
    let mut c = bin();
    c.current_dir(dir).args([
        "train",
        "--config",
        "task.toml",
        "--set",
        &format!("output_dir=\"{out}\""),
    ]);
    if resume {
        c.arg("--resume");
    }
    c
}

fn prompt_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("adapter/adapter.safetensors")).expect("adapter written")
}

#[test]
fn killed_run_resumes_to_the_same_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_task(dir);

    let status = train(dir, "full", false).status().unwrap();
    assert!(status.success(), "uninterrupted run failed");
    // the command line plots the training curves the library logged
    let svg = std::fs::read_to_string(dir.join("full/curves.svg")).expect("curves.svg written");
    assert!(svg.contains("<svg") && svg.contains("loss"), "{svg}");

    let mut child = train(dir, "killed", false).spawn().unwrap();
    let latest = dir.join("killed/checkpoint/latest");
    let start = Instant::now();
    while !latest.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run finished before it could be killed; make it longer"
    );
    assert!(
        !dir.join("killed/adapter").exists(),
        "killed run must not have finished"
    );

    let out = train(dir, "killed", true).output().unwrap();
    assert!(
        out.status.success(),
        "resume failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        prompt_bytes(&dir.join("full")),
        prompt_bytes(&dir.join("killed")),
        "resumed run ended elsewhere"
    );
}

#[test]
fn resume_without_checkpoint_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_task(tmp.path());
    let out = train(tmp.path(), "nothing", true).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no checkpoint") && !err.contains("panicked"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_task(dir);
    let out = train(dir, "run", false)
        .args(["--set", "train.epochs=1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a long batching wait keeps the request in flight when the signal comes
    let mut server = bin()
        .current_dir(dir)
        .args([
            "serve",
            "--model",
            "model",
            "--adapter",
            "sst=run/adapter",
            "--port",
            "0",
            "--max-wait-ms",
            "1500",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let mut addr = String::new();
    let mut log = String::new();
    while addr.is_empty() {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the server ended: {log}"
        );
        log.push_str(&line);
        if let Some(a) = line.trim().strip_prefix("listening on http://") {
            addr = a.to_string();
        }
    }
    let body = r#"{"adapter": "sst", "inputs": ["the movie was good", "the movie was bad"]}"#;
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /v1/classify HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\"label\":\"positive\"") || response.contains("\"label\":\"negative\""),
        "{response}"
    );
    let status = server.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{log}{rest}");
    assert!(rest.contains("shutting down"), "{rest}");
}
