//! Tokenizers: HF tokenizer.json / vocab.txt, and tokenizers rebuilt from GGUF metadata.
pub mod from_gguf;
