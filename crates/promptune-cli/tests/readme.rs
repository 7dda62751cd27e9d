//! The README's library snippet, kept compiling here (it runs when `MODELS_DIR` points at the
//! output of `scripts/fetch-models.sh`).

use burn::tensor::Device;
use promptune::generate::{generate, score, GenerateOptions, Sampling};
use promptune::model::Model;

// Same body as the README's `main`, with the model folder as a parameter.
fn readme_main(models: &str) -> promptune::Result<()> {
    let device = Device::flex();
    let model = Model::load(
        &format!("{models}/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
        &device,
    )?;
    println!("{} layers", model.backbone.config().num_layers);

    let opts = GenerateOptions {
        max_new_tokens: 16,
        sampling: Sampling::Greedy,
        ..Default::default()
    };
    println!("{}", generate(&model, "The capital of France is", &opts)?);

    for t in score(&model, "The capital of France is Paris.")? {
        println!("{:>12} {:?}", t.token, t.logprob);
    }
    Ok(())
}

#[test]
fn readme_library_snippet() {
    match std::env::var("MODELS_DIR") {
        Ok(dir) => readme_main(&dir).unwrap(),
        Err(_) => eprintln!("skipping readme_library_snippet: set MODELS_DIR to the folder written by scripts/fetch-models.sh"),
    }
}
