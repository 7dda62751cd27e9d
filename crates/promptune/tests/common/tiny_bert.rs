//! The tiny random BERT fixture with a word-level tokenizer that adds `[CLS]`/`[SEP]` as BERT
//! does, and small tagging and QA data sets written from its 64 words: the NLU task tests.
#![allow(dead_code)]

use std::path::Path;

/// Specials first (ids 0-4), then 59 lowercase words: 64 = the fixture's vocabulary.
const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
/// Person names.
pub const PEOPLE: [&str; 6] = ["anna", "boris", "carla", "dmitri", "elena", "farid"];
/// Places.
pub const PLACES: [&str; 6] = ["paris", "oslo", "lima", "cairo", "quito", "riga"];
/// Organisations.
pub const ORGS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const OTHER: [&str; 21] = [
    "visited", "met", "joined", "left", "in", "at", "the", "on", "monday", "friday", "and", "who",
    "where", "did", "go", "company", "city", "?", ".", "works", "for",
];

fn words() -> Vec<String> {
    let mut w: Vec<String> = SPECIALS
        .iter()
        .chain(&PEOPLE)
        .chain(&PLACES)
        .chain(&ORGS)
        .chain(&OTHER)
        .map(|s| s.to_string())
        .collect();
    let named = w.len();
    w.extend((named..64).map(|k| format!("filler{k}")));
    w
}

/// A model folder: tiny-bert's weights (2 layers, hidden 32, 64 positions) and the tokenizer.
pub fn tiny_bert_with_tokenizer(dir: &Path) {
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../promptune/tests/fixtures/tiny-bert");
    std::fs::create_dir_all(dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let vocab: serde_json::Map<String, serde_json::Value> = words()
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": SPECIALS.iter().enumerate().map(|(i, t)| serde_json::json!({
            "id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true})).collect::<Vec<_>>(),
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(
        dir.join("tokenizer.json"),
        serde_json::to_vec(&tokenizer).unwrap(),
    )
    .unwrap();
}

/// `n` CoNLL sentences ("PERSON visited PLACE on monday ." / "PERSON works for ORG ."),
/// from sentence `offset` on, IOB2 tags in the last column.
pub fn conll(n: usize, offset: usize) -> String {
    let mut out = String::from("-DOCSTART- -X- -X- O\n\n");
    for i in offset..offset + n {
        let person = PEOPLE[i % PEOPLE.len()];
        let rows: Vec<(&str, &str)> = if i % 2 == 0 {
            let place = PLACES[(i / 2) % PLACES.len()];
            vec![
                (person, "B-PER"),
                ("visited", "O"),
                (place, "B-LOC"),
                ("on", "O"),
                ("monday", "O"),
                (".", "O"),
            ]
        } else {
            let org = ORGS[(i / 2) % ORGS.len()];
            vec![
                (person, "B-PER"),
                ("works", "O"),
                ("for", "O"),
                (org, "B-ORG"),
                (".", "O"),
            ]
        };
        for (w, t) in rows {
            out.push_str(&format!("{w} X X {t}\n"));
        }
        out.push('\n');
    }
    out
}

/// A SQuAD v1.1 file of `n` questions over short contexts, in `articles` articles.
pub fn squad(n: usize, offset: usize, articles: usize) -> String {
    let mut data: Vec<serde_json::Value> = Vec::new();
    for a in 0..articles {
        let mut paragraphs = Vec::new();
        for i in (offset..offset + n).filter(|i| i % articles == a) {
            let person = PEOPLE[i % PEOPLE.len()];
            let place = PLACES[(i / 3) % PLACES.len()];
            let org = ORGS[(i / 2) % ORGS.len()];
            let context =
                format!("{person} visited {place} on friday . {person} works for {org} .");
            let (question, answer) = if i % 2 == 0 {
                (format!("where did {person} go ?"), place)
            } else {
                (format!("who did {person} join ?"), org)
            };
            let start = context.find(&format!(" {answer} ")).unwrap() + 1;
            paragraphs.push(serde_json::json!({
                "context": context,
                "qas": [{"id": format!("q{i}"), "question": question,
                         "answers": [{"text": answer, "answer_start": start}]}]
            }));
        }
        data.push(serde_json::json!({"title": format!("article {a}"), "paragraphs": paragraphs}));
    }
    serde_json::json!({"version": "1.1", "data": data}).to_string()
}
