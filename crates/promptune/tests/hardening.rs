//! Data-loss and silent-success guards of training and adapters: an output folder in use by
//! another run, a resumed log trimmed to its checkpoint, diverged parameters never saved,
//! settings that cannot work, and adapters whose files cannot be what they claim.

mod common;
#[path = "common/tiny.rs"]
mod tiny;

use std::path::Path;

use burn::tensor::Device;
use promptune::adapter::Adapter;
use promptune::method::prompt_tuning::{PromptInit, PromptTuningConfig};
use promptune::pipeline::{run_train, MethodConfig, Predictor, TaskConfig};
use promptune::train::trainer::TrainConfig;

fn config(dir: &Path, out: &str, train: TrainConfig) -> TaskConfig {
    let method = MethodConfig::PromptTuning(PromptTuningConfig {
        init: PromptInit::Text("positive negative review".into()),
        ..Default::default()
    });
    let template = "{soft*4} review: {text_a} sentiment: {mask}";
    tiny::sentiment_task(dir, out, template, method, train)
}

fn short() -> TrainConfig {
    TrainConfig {
        lr: 0.1,
        batch_size: 8,
        epochs: 2,
        checkpoint_every: 2,
        ..Default::default()
    }
}

#[test]
fn a_second_run_into_a_folder_in_use_is_refused_and_touches_nothing() {
    let dir = tiny::sentiment_folder();
    let cfg = config(dir.path(), "run", short());
    std::fs::create_dir_all(&cfg.output_dir).unwrap();
    std::fs::write(cfg.output_dir.join("metrics.jsonl"), "{\"step\":1}\n").unwrap();
    // the first run holds the lock as `fit` takes it
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cfg.output_dir.join(".promptune.lock"))
        .unwrap();
    held.try_lock().unwrap();
    let err = run_train(&cfg, false, &Device::flex())
        .expect_err("refused")
        .to_string();
    assert!(err.contains("in use by another training run"), "{err}");
    assert_eq!(
        std::fs::read_to_string(cfg.output_dir.join("metrics.jsonl")).unwrap(),
        "{\"step\":1}\n",
        "the other run's log is untouched"
    );
    assert!(
        !cfg.output_dir.join("task.json").exists(),
        "nor is its record of the config written over"
    );
    // once it ends, the folder is free again
    drop(held);
    run_train(&cfg, false, &Device::flex()).expect("trains once the folder is free");
}

#[test]
fn a_resumed_log_keeps_one_record_per_step_up_to_its_checkpoint() {
    let dir = tiny::sentiment_folder();
    let device = Device::flex();
    let cfg = config(dir.path(), "run", short());
    let report = run_train(&cfg, false, &device).expect("train");
    let metrics = cfg.output_dir.join("metrics.jsonl");
    let clean = std::fs::read_to_string(&metrics).unwrap();
    // what an interrupted (or concurrent) run leaves after the checkpoint: later steps and
    // a torn line
    let mut dirty = clean.clone();
    dirty.push_str("{\"step\":999,\"loss\":0.1}\nnot json\n{\"step\":1000,\"lo");
    std::fs::write(&metrics, dirty).unwrap();
    let again = run_train(&cfg, true, &device).expect("resume");
    assert_eq!(again.steps, report.steps);
    let records = promptune::train::metrics::read_metrics(&metrics).expect("a valid log");
    assert!(records
        .iter()
        .all(|r| r["step"].as_u64().unwrap() <= report.steps as u64));
    let losses = records.iter().filter(|r| r.get("loss").is_some()).count();
    assert_eq!(losses, report.steps, "one loss record per step");

    // resuming with another template is named as such (not a tensor shape error)
    let mut changed = cfg.clone();
    changed.template = "{soft*6} review: {text_a} sentiment: {mask}".into();
    let err = run_train(&changed, true, &device)
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("`template` was") && err.contains("soft*6"),
        "{err}"
    );
}

#[test]
fn diverged_parameters_are_never_saved_as_a_checkpoint() {
    let dir = tiny::sentiment_folder();
    // an f64 learning rate beyond f32: the first step makes the prompt infinite
    let mut train = short();
    train.lr = 1e39;
    train.checkpoint_every = 1;
    let cfg = config(dir.path(), "run", train);
    let err = run_train(&cfg, false, &Device::flex())
        .expect_err("diverges")
        .to_string();
    assert!(err.contains("diverged") && err.contains("prompt"), "{err}");
    assert!(
        !cfg.output_dir.join("checkpoint/latest").exists(),
        "no checkpoint of infinite values"
    );
}

#[test]
fn settings_that_cannot_work_are_refused_by_name() {
    type Edit = fn(&mut TaskConfig);
    let cases: [(Edit, &str); 5] = [
        (|c| c.train.max_grad_norm = Some(-1.0), "max_grad_norm"),
        (|c| c.train.max_grad_norm = Some(f32::NAN), "max_grad_norm"),
        (|c| c.train.weight_decay = f64::NAN, "weight_decay"),
        (|c| c.train.weight_decay = -0.1, "weight_decay"),
        (
            |c| {
                c.task = promptune::pipeline::TaskKind::QuestionAnswering;
                c.qa.max_answer_len = 0;
            },
            "max_answer_len",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (edit, key) in cases {
        let mut cfg = config(dir.path(), "run", short());
        edit(&mut cfg);
        let err = cfg.validate().expect_err(key).to_string();
        assert!(err.contains(key), "{err}");
        let err = run_train(&cfg, false, &Device::flex())
            .expect_err(key)
            .to_string();
        assert!(err.contains(key), "{err}");
    }
    assert!(
        !dir.path().join("run").exists(),
        "refused before any output"
    );
}

#[test]
fn a_label_word_the_model_cannot_say_is_an_error() {
    let dir = tiny::sentiment_folder();
    let mut cfg = config(dir.path(), "run", short());
    cfg.verbalizer.as_mut().unwrap().words[1] = vec!["splendiferous".into()];
    let err = run_train(&cfg, false, &Device::flex())
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("splendiferous") && err.contains("unknown token"),
        "{err}"
    );
}

#[test]
fn adapters_that_cannot_be_what_they_claim_are_refused() {
    let dir = tiny::sentiment_folder();
    let device = Device::flex();
    let report = run_train(&config(dir.path(), "run", short()), false, &device).expect("train");
    let good = Adapter::load(&report.adapter_dir).unwrap();
    let broken = |edit: &dyn Fn(&mut Adapter)| -> String {
        let mut a = good.clone();
        edit(&mut a);
        let out = dir.path().join("broken");
        a.save(&out).unwrap();
        Predictor::load(&out, None, &device)
            .err()
            .expect("refused")
            .to_string()
    };
    let err = broken(&|a| a.params[0].data[1] = f32::NAN);
    assert!(err.contains("NaN") && err.contains("prompt"), "{err}");
    let err = broken(&|a| a.config.method = "lora".into());
    assert!(err.contains("unknown method `lora`"), "{err}");
    let err = broken(&|a| a.config.version = 7);
    assert!(err.contains("version 7") && err.contains("newer"), "{err}");
    let err = broken(&|a| a.params.clear());
    assert!(err.contains("without its trained tensors"), "{err}");
    Predictor::load(&report.adapter_dir, None, &device).expect("the original still loads");
}
