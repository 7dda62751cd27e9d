//! A seeded mutation fuzzer over every reader of outside input: templates, task configs,
//! JSONL/CSV/TSV, CoNLL and SQuAD files, safetensors, GGUF files, adapters (loaded and then
//! run) and PEFT adapters. Each target starts from valid inputs and breaks them (bytes flipped,
//! inserted, duplicated, cut; integers set to extremes). The invariants: no panic, no single
//! allocation beyond [`ALLOCATION_LIMIT`] (the allocator refuses it, which aborts the test),
//! and a clear error or a valid result.
//!
//! CI runs `CASES` inputs per target; for a longer run by hand:
//! `PROMPTUNE_FUZZ_CASES=20000 PROMPTUNE_FUZZ_SEED=7 cargo test --release -p promptune --test fuzz -- --nocapture`.

mod common;
#[path = "common/tiny.rs"]
mod tiny;
#[path = "common/tiny_bert.rs"]
mod tiny_bert;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The largest single allocation a hostile input may cause.
const ALLOCATION_LIMIT: usize = 1 << 30;

/// Refuses (null: the process aborts) any single allocation beyond [`ALLOCATION_LIMIT`].
struct Bounded;

unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Bounded = Bounded;

/// Inputs per target in CI.
const CASES: usize = 150;

fn cases() -> usize {
    std::env::var("PROMPTUNE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES)
}

fn rng(target: &str) -> StdRng {
    let seed: u64 = std::env::var("PROMPTUNE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let salt = target.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    StdRng::seed_from_u64(seed ^ salt)
}

/// One broken copy of `input`: a few edits of random kinds, kept mostly within the first
/// `focus` bytes (headers) when given.
fn mutate(input: &[u8], rng: &mut StdRng, focus: Option<usize>) -> Vec<u8> {
    let mut out = input.to_vec();
    let edits = rng.random_range(1..=4);
    for _ in 0..edits {
        let span = focus.unwrap_or(out.len()).min(out.len()).max(1);
        let at = rng.random_range(0..span);
        match rng.random_range(0..7) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 => out.insert(at.min(out.len()), rng.random()),
            2 => out.truncate(at),
            3 if at + 8 <= out.len() => {
                let v: u64 = match rng.random_range(0..4) {
                    0 => u64::MAX,
                    1 => u32::MAX as u64,
                    2 => 0,
                    _ => rng.random_range(0..1 << 40),
                };
                out[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            4 if at + 4 <= out.len() => {
                out[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            }
            5 if !out.is_empty() => {
                let end = (at + rng.random_range(1..64)).min(out.len());
                let chunk = out[at.min(end)..end].to_vec();
                let to = rng.random_range(0..=out.len());
                out.splice(to..to, chunk);
            }
            _ => {
                let special = [
                    b'{', b'}', b'"', b',', b'\t', b'\n', b'*', b':', b'[', b']', 0,
                ];
                let b = special[rng.random_range(0..special.len())];
                out.insert(at.min(out.len()), b);
            }
        }
    }
    out
}

/// Runs `each` on `cases()` broken copies of `seeds`; fails naming every input that panicked
/// (written under `target/fuzz-failures/` to reproduce).
fn fuzz(target: &str, seeds: &[Vec<u8>], focus: Option<usize>, each: impl Fn(&[u8])) {
    let mut rng = rng(target);
    let mut panics = Vec::new();
    let mut ok = 0usize;
    let n = cases();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..n {
        let seed = &seeds[i % seeds.len()];
        let input = if i < seeds.len() {
            seed.clone()
        } else {
            mutate(seed, &mut rng, focus)
        };
        match catch_unwind(AssertUnwindSafe(|| each(&input))) {
            Ok(()) => ok += 1,
            Err(p) => {
                let message = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
                let _ = std::fs::create_dir_all(&dir);
                let file = dir.join(format!("{target}-{i}"));
                let _ = std::fs::write(&file, &input);
                panics.push(format!("{}: {message}", file.display()));
            }
        }
    }
    std::panic::set_hook(hook);
    eprintln!(
        "fuzz {target}: {n} inputs, {ok} handled, {} panics",
        panics.len()
    );
    assert!(
        panics.is_empty(),
        "{target} panicked:\n{}",
        panics.join("\n")
    );
}

/// `Ok` or a non-empty error message: an error must say something.
fn said<T>(result: promptune::Result<T>) {
    if let Err(e) = result {
        assert!(
            !e.to_string().trim().is_empty(),
            "an error without a message"
        );
    }
}

#[test]
fn templates() {
    let seeds: Vec<Vec<u8>> = [
        "{soft*20} Review: {text_a}\nSentiment:{mask}",
        "{{x}} {soft:\"great}\"} {soft*3:\"it was\"} {premise}{mask}",
        "{soft*3}{text_a}{soft*3} sentiment:{mask}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("template", &seeds, None, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        if let Ok(t) = promptune::prompt::Template::parse(&text) {
            assert!(t.soft_count() <= promptune::prompt::template::MAX_SOFT_TOKENS);
            let _ = t.mask_count();
        }
    });
}

#[test]
fn task_configs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let seeds: Vec<Vec<u8>> = [
        "sst2-smollm2.toml",
        "sst2-smollm2-prefix.toml",
        "squad-minilm-ptv2.toml",
    ]
    .iter()
    .map(|f| std::fs::read(root.join(f)).unwrap())
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("task.toml");
    fuzz("task-config", &seeds, None, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        said(promptune::pipeline::TaskConfig::load(&path, &[]));
    });
}

#[test]
fn data_files() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = tiny::sentiment_jsonl(6, 0).into_bytes();
    let csv = b"text,label\n\"good, fine\",1\nbad,0\n\"says \"\"hi\"\"\",1\n".to_vec();
    let tsv = b"sentence\tlabel\ngood\t1\nbad\t0\n".to_vec();
    let labels = ["negative".to_string(), "positive".to_string()];
    for (name, seed, column) in [
        ("d.jsonl", jsonl, "text"),
        ("d.csv", csv, "text"),
        ("d.tsv", tsv, "sentence"),
    ] {
        let path = dir.path().join(name);
        fuzz(&format!("data-{name}"), &[seed], None, |bytes| {
            std::fs::write(&path, bytes).unwrap();
            let mut spec = promptune::data::DataSpec::new(&path)
                .column("text_a", column)
                .label("label");
            spec.label_map = [
                ("0".into(), "negative".into()),
                ("1".into(), "positive".into()),
            ]
            .into();
            spec.max_line_bytes = Some(4096);
            said(promptune::data::read_examples(&spec, &labels));
        });
    }
}

#[test]
fn conll_and_squad_files() {
    let dir = tempfile::tempdir().unwrap();
    let conll = tiny_bert::conll(6, 0).into_bytes();
    let squad = tiny_bert::squad(6, 0, 2).into_bytes();
    let path = dir.path().join("f");
    fuzz("conll", &[conll], None, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        said(promptune::data::conll::read_conll(&path, None, None));
    });
    fuzz("squad", &[squad], None, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        said(promptune::data::squad::read_squad(&path));
    });
}

#[test]
fn safetensors_and_gguf_checkpoints() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    // a model folder whose weights file is broken
    let folder = dir.path().join("tiny-llama");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        fixtures.join("tiny-llama/config.json"),
        folder.join("config.json"),
    )
    .unwrap();
    let weights = std::fs::read(fixtures.join("tiny-llama/model.safetensors")).unwrap();
    fuzz("safetensors", &[weights], Some(2048), |bytes| {
        std::fs::write(folder.join("model.safetensors"), bytes).unwrap();
        said(promptune::backbone::load_backbone(&folder, &device));
    });
    let gguf = dir.path().join("m.gguf");
    let seeds = vec![
        std::fs::read(fixtures.join("tiny-llama.gguf")).unwrap(),
        std::fs::read(fixtures.join("tiny-gemma3.gguf")).unwrap(),
        std::fs::read(fixtures.join("tiny-gpt2.gguf")).unwrap(),
    ];
    fuzz("gguf", &seeds, Some(8192), |bytes| {
        std::fs::write(&gguf, bytes).unwrap();
        said(promptune::backbone::load_backbone(&gguf, &device));
    });
}

#[test]
fn sentencepiece_models_and_encoder_decoder_configs() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let spiece = dir.path().join("spiece.model");
    let seed = std::fs::read(fixtures.join("tokenizers/t5/spiece.model")).unwrap();
    fuzz("spiece", &[seed], None, |bytes| {
        std::fs::write(&spiece, bytes).unwrap();
        said(promptune::tokenizer::load_tokenizer_file(&spiece, None));
    });
    // a BART folder whose config.json is broken, loaded and run one encoder-decoder step
    let folder = dir.path().join("tiny-bart");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        fixtures.join("tiny-bart/model.safetensors"),
        folder.join("model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read(fixtures.join("tiny-bart/config.json")).unwrap();
    let device = Device::flex();
    fuzz("bart-config", &[config], None, |bytes| {
        std::fs::write(folder.join("config.json"), bytes).unwrap();
        let Ok(model) = promptune::backbone::load_backbone(&folder, &device) else {
            return;
        };
        let mut input = promptune::backbone::ForwardInput::new(
            promptune::backbone::TokenBatch::single(&[5, 6, 7]).unwrap(),
        );
        input.decoder = Some(promptune::backbone::DecoderInput::new(
            promptune::backbone::TokenBatch::single(&[2, 9]).unwrap(),
        ));
        input.logits.positions = promptune::backbone::LogitPositions::All;
        said(model.forward(&input, None));
    });
}

#[test]
fn generation_data_and_reference_files() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data");
    let dir = tempfile::tempdir().unwrap();
    let e2e = dir.path().join("e2e.csv");
    let seed = std::fs::read(data.join("e2e_invented.csv")).unwrap();
    fuzz("e2e", &[seed], None, |bytes| {
        std::fs::write(&e2e, bytes).unwrap();
        said(promptune::data::generation::read_e2e(&e2e));
    });
    let dart = dir.path().join("dart.json");
    let seed = std::fs::read(data.join("dart_invented.json")).unwrap();
    fuzz("dart", &[seed], None, |bytes| {
        std::fs::write(&dart, bytes).unwrap();
        said(promptune::data::generation::read_dart(&dart));
    });
    let webnlg = dir.path().join("webnlg.xml");
    let seed = std::fs::read(data.join("webnlg_invented.xml")).unwrap();
    fuzz("webnlg", &[seed], None, |bytes| {
        std::fs::write(&webnlg, bytes).unwrap();
        said(promptune::data::generation::read_webnlg(&webnlg));
    });
    // reference groups for metrics, scored when they pair up
    let (hyp, refs) = (dir.path().join("hyp.txt"), dir.path().join("refs.txt"));
    std::fs::write(&hyp, "the cat sat\na dog ran\n").unwrap();
    let seed = b"the cat sat on the mat\na cat sat\n\na dog ran far\n".to_vec();
    fuzz("references", &[seed], None, |bytes| {
        std::fs::write(&refs, bytes).unwrap();
        use promptune::metrics::generation::{files, score_generations};
        let hyps = files::read_hypotheses(&hyp).unwrap();
        if let Ok(groups) = files::read_references(&[refs.as_path()], hyps.len()) {
            said(score_generations(&hyps, &groups));
        }
    });
}

#[test]
fn adapters_loaded_and_run() {
    use promptune::method::prompt_tuning::{PromptInit, PromptTuningConfig};
    let dir = tiny::sentiment_folder();
    let device = Device::flex();
    let method = promptune::pipeline::MethodConfig::PromptTuning(PromptTuningConfig {
        init: PromptInit::Text("positive negative review".into()),
        ..Default::default()
    });
    let train = promptune::train::trainer::TrainConfig {
        batch_size: 16,
        epochs: 1,
        ..Default::default()
    };
    let cfg = tiny::sentiment_task(
        dir.path(),
        "run",
        "{soft*4} review: {text_a} sentiment: {mask}",
        method,
        train,
    );
    let report = promptune::pipeline::run_train(&cfg, false, &device).expect("train");
    let model =
        Arc::new(promptune::model::Model::load_path(&dir.path().join("model"), &device).unwrap());
    let examples = promptune::data::read_examples(
        cfg.data.dev.as_ref().unwrap(),
        &["negative".into(), "positive".into()],
    )
    .unwrap();
    let config = std::fs::read(report.adapter_dir.join("adapter_config.json")).unwrap();
    let tensors = std::fs::read(report.adapter_dir.join("adapter.safetensors")).unwrap();
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let run = |config: &[u8], tensors: &[u8]| {
        std::fs::write(broken.join("adapter_config.json"), config).unwrap();
        std::fs::write(broken.join("adapter.safetensors"), tensors).unwrap();
        let Ok(adapter) = promptune::adapter::Adapter::load(&broken) else {
            return;
        };
        let Ok(predictor) =
            promptune::pipeline::Predictor::with_model(adapter, model.clone(), &device)
        else {
            return;
        };
        said(predictor.predict(&examples[..4], 2));
    };
    fuzz(
        "adapter-config",
        std::slice::from_ref(&config),
        None,
        |bytes| run(bytes, &tensors),
    );
    fuzz(
        "adapter-tensors",
        std::slice::from_ref(&tensors),
        Some(512),
        |bytes| run(&config, bytes),
    );

    // the same adapter in PEFT's layout, broken and imported
    let adapter = promptune::adapter::Adapter::load(&report.adapter_dir).unwrap();
    let peft_dir = dir.path().join("peft");
    promptune::adapter::peft::export_prompt_tuning(&adapter, &model.backbone.info(), &peft_dir)
        .unwrap();
    let mut peft_cfg = cfg.clone();
    peft_cfg.template = "{soft*4} review: {text_a} sentiment: {mask}".into();
    let peft_config = std::fs::read(peft_dir.join("adapter_config.json")).unwrap();
    let peft_tensors = std::fs::read(peft_dir.join("adapter_model.safetensors")).unwrap();
    let import = |config: &[u8], tensors: &[u8]| {
        std::fs::write(peft_dir.join("adapter_config.json"), config).unwrap();
        std::fs::write(peft_dir.join("adapter_model.safetensors"), tensors).unwrap();
        said(promptune::pipeline::import_peft(
            &peft_dir, &peft_cfg, &device,
        ));
    };
    fuzz(
        "peft-config",
        std::slice::from_ref(&peft_config),
        None,
        |bytes| import(bytes, &peft_tensors),
    );
    fuzz("peft-tensors", &[peft_tensors], Some(512), |bytes| {
        import(&peft_config, bytes)
    });
}
