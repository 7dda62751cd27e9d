//! Hub id resolution without a network: the offline error comes fast and says what to do, and
//! cached models (promptune's cache, the HF cache layout) are found without any network access.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use promptune::checkpoint::hub::{resolve_with, HubId, HubOptions};
use promptune::Error;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Settings with temporary caches and an endpoint where nothing listens (connection refused).
fn offline_options(root: &Path) -> HubOptions {
    HubOptions {
        cache_dir: Some(root.join("promptune")),
        hf_cache_dir: Some(root.join("hf")),
        endpoint: "http://127.0.0.1:9".into(),
        token: None,
        offline: false,
        connect_timeout: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(60),
        deadline: Duration::from_secs(600),
    }
}

fn copy_model(dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("tiny-llama").join(f), dest.join(f)).unwrap();
    }
}

fn hub_message(result: promptune::Result<PathBuf>) -> String {
    match result {
        Err(Error::Hub(msg)) => msg,
        other => panic!("expected Error::Hub, got {other:?}"),
    }
}

#[test]
fn unreachable_hub_fails_fast_with_guidance() {
    let root = tempfile::tempdir().unwrap();
    let opts = offline_options(root.path());
    let start = Instant::now();
    let msg = hub_message(resolve_with("someorg/somemodel", &opts));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    for needle in [
        "someorg/somemodel",
        "unreachable",
        "fetch-models.sh",
        ".gguf",
        "config.json",
    ] {
        assert!(msg.contains(needle), "`{needle}` missing from: {msg}");
    }
}

#[test]
fn silent_hub_is_bounded_by_the_timeouts() {
    // a server that accepts connections and never answers
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let root = tempfile::tempdir().unwrap();
    let mut opts = offline_options(root.path());
    opts.endpoint = format!("http://127.0.0.1:{port}");
    opts.connect_timeout = Duration::from_millis(500);
    let start = Instant::now();
    let msg = hub_message(resolve_with("someorg/somemodel:model.Q4_0.gguf", &opts));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        msg.contains("unreachable") && msg.contains("someorg/somemodel"),
        "{msg}"
    );
}

#[test]
fn offline_flag_never_touches_the_network() {
    let root = tempfile::tempdir().unwrap();
    let mut opts = offline_options(root.path());
    opts.offline = true;
    opts.endpoint = "http://10.255.255.1:81".into();
    let start = Instant::now();
    let msg = hub_message(resolve_with("someorg/somemodel", &opts));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
    assert!(msg.contains("HF_HUB_OFFLINE"), "{msg}");
}

#[test]
fn promptune_cache_is_used_without_network() {
    let root = tempfile::tempdir().unwrap();
    let opts = offline_options(root.path());
    let cached = root.path().join("promptune/someorg--tiny");
    copy_model(&cached);
    assert_eq!(resolve_with("someorg/tiny", &opts).unwrap(), cached);
    let gguf = root.path().join("promptune/someorg--tiny-gguf/tiny.gguf");
    std::fs::create_dir_all(gguf.parent().unwrap()).unwrap();
    std::fs::copy(fixture("tiny-llama.gguf"), &gguf).unwrap();
    assert_eq!(
        resolve_with("someorg/tiny-gguf:tiny.gguf", &opts).unwrap(),
        gguf
    );
}

#[test]
fn incomplete_cache_folder_is_not_used() {
    let root = tempfile::tempdir().unwrap();
    let opts = offline_options(root.path());
    let cached = root.path().join("promptune/someorg--tiny");
    std::fs::create_dir_all(&cached).unwrap();
    std::fs::copy(
        fixture("tiny-llama/config.json"),
        cached.join("config.json"),
    )
    .unwrap();
    hub_message(resolve_with("someorg/tiny", &opts));
}

#[test]
fn hf_cache_layout_is_used_without_network() {
    let root = tempfile::tempdir().unwrap();
    let opts = offline_options(root.path());
    let repo = root.path().join("hf/models--someorg--tiny");
    let snapshot = repo.join("snapshots/0123abcd");
    copy_model(&snapshot);
    // an older, incomplete snapshot is skipped
    std::fs::create_dir_all(repo.join("snapshots/00000000")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd\n").unwrap();
    assert_eq!(resolve_with("someorg/tiny", &opts).unwrap(), snapshot);
}

#[test]
fn local_paths_win_and_missing_paths_are_not_hub_ids() {
    let root = tempfile::tempdir().unwrap();
    let opts = offline_options(root.path());
    let local = fixture("tiny-llama");
    assert_eq!(resolve_with(local.to_str().unwrap(), &opts).unwrap(), local);
    let missing = root.path().join("nothing/here/model.gguf");
    match resolve_with(missing.to_str().unwrap(), &opts) {
        Err(Error::MissingFile { path, hint }) => {
            assert_eq!(path, missing);
            assert!(hint.contains("no such file"), "{hint}");
        }
        other => panic!("expected MissingFile, got {other:?}"),
    }
}

#[test]
fn hub_id_syntax() {
    assert_eq!(HubId::parse("org/name").map(|i| i.file), Some(None));
    assert_eq!(
        HubId::parse("org/name:m.gguf")
            .and_then(|i| i.file)
            .as_deref(),
        Some("m.gguf")
    );
    assert!(HubId::parse("org/name.gguf").is_none());
    assert!(HubId::parse("models/a/b").is_none());
}

/// A minimal HTTP/1.1 file server in a thread: `GET /<repo>/resolve/main/<file>` answers the
/// bytes of `files[file]`, anything else 404. Returns its base URL.
#[cfg(feature = "hub")]
fn serve(files: Vec<(&'static str, Vec<u8>)>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // skip the headers
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let body = files
                .iter()
                .find(|(name, _)| path == format!("/someorg/tiny/resolve/main/{name}"))
                .map(|(_, bytes)| bytes.clone());
            let mut stream = stream;
            let _ = match body {
                Some(bytes) => {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        bytes.len()
                    );
                    stream
                        .write_all(head.as_bytes())
                        .and_then(|_| stream.write_all(&bytes))
                }
                None => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    base
}

#[cfg(feature = "hub")]
#[test]
fn a_download_that_stalls_mid_body_fails_instead_of_hanging() {
    use std::io::{BufRead, BufReader, Write};
    // a server that sends the headers and a few bytes of a large file, then nothing
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nGGUF and then silence",
            );
            held.push(stream);
        }
    });
    let root = tempfile::tempdir().unwrap();
    let mut opts = offline_options(root.path());
    opts.endpoint = format!("http://127.0.0.1:{port}");
    opts.idle_timeout = Duration::from_millis(700);
    let start = Instant::now();
    let msg = hub_message(resolve_with("someorg/somemodel:model.Q4_0.gguf", &opts));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        msg.contains("stalled") && msg.contains("model.Q4_0.gguf") && msg.contains("bytes"),
        "{msg}"
    );
    assert!(
        walk(root.path())
            .iter()
            .all(|p| !p.ends_with("model.Q4_0.gguf")),
        "nothing half-written is kept as the file"
    );
}

#[cfg(feature = "hub")]
#[test]
fn downloads_into_the_cache_then_reuses_it() {
    let read = |f: &str| std::fs::read(fixture("tiny-llama").join(f)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut opts = offline_options(root.path());
    opts.endpoint = serve(vec![
        ("config.json", read("config.json")),
        ("model.safetensors", read("model.safetensors")),
        ("tokenizer.json", b"{}".to_vec()),
        (
            "tiny.gguf",
            std::fs::read(fixture("tiny-llama.gguf")).unwrap(),
        ),
    ]);
    let dir = resolve_with("someorg/tiny", &opts).unwrap();
    assert_eq!(dir, root.path().join("promptune/someorg--tiny"));
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        read("model.safetensors")
    );
    assert!(dir.join("tokenizer.json").is_file());
    // only complete files under their final names
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!name.contains("partial"), "{name}");
    }
    promptune::backbone::load_backbone(&dir, &burn::tensor::Device::flex())
        .expect("downloaded model loads");

    let gguf = resolve_with("someorg/tiny:tiny.gguf", &opts).unwrap();
    assert_eq!(gguf, dir.join("tiny.gguf"));

    // the server is gone for the next lookups: the cache answers
    opts.endpoint = "http://127.0.0.1:9".into();
    assert_eq!(resolve_with("someorg/tiny", &opts).unwrap(), dir);
    assert_eq!(resolve_with("someorg/tiny:tiny.gguf", &opts).unwrap(), gguf);
}

#[cfg(feature = "hub")]
#[test]
fn missing_repository_or_file_is_named() {
    let root = tempfile::tempdir().unwrap();
    let mut opts = offline_options(root.path());
    opts.endpoint = serve(vec![]);
    let msg = hub_message(resolve_with("someorg/tiny", &opts));
    assert!(
        msg.contains("config.json") && msg.contains("404") && msg.contains("someorg/tiny"),
        "{msg}"
    );
    let msg = hub_message(resolve_with("someorg/tiny:nope.gguf", &opts));
    assert!(msg.contains("nope.gguf") && msg.contains("404"), "{msg}");
    // nothing half-written is left behind
    let leftovers: Vec<_> = walk(root.path())
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[cfg(feature = "hub")]
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}
