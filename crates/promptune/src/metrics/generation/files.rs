//! Hypothesis and reference files as the E2E script and sacrebleu's command line read them:
//! hypotheses one per line; references either one file of groups separated by empty lines
//! (the E2E layout; a file without empty lines holds one reference per item) or several
//! parallel files of one reference per line (sacrebleu's; an empty line is a missing
//! reference).

use std::path::Path;

use crate::{Error, Result};

/// The largest hypothesis or reference file read.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

fn read_text(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::format(
            path,
            format!(
                "{} bytes is more than the {MAX_FILE_BYTES} a text file may hold here",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        Error::format(
            path,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Lines without their line ends (`\n` or `\r\n`); a final line end adds no line.
fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// One hypothesis per line.
pub fn read_hypotheses(path: &Path) -> Result<Vec<String>> {
    Ok(lines(&read_text(path)?))
}

/// Reference groups for `items` hypotheses from `paths`: one file of groups separated by
/// empty lines, or parallel files of one reference per line.
pub fn read_references(paths: &[&Path], items: usize) -> Result<Vec<Vec<String>>> {
    match paths {
        [] => Err(Error::InvalidInput("no reference file given".into())),
        [one] => {
            let text = read_text(one)?;
            let all = lines(&text);
            let groups: Vec<Vec<String>> = if all.iter().any(|l| l.trim().is_empty()) {
                text.replace("\r\n", "\n")
                    .split("\n\n")
                    .map(|g| lines(g.trim_matches('\n')))
                    .filter(|g| !g.is_empty())
                    .collect()
            } else {
                all.into_iter().map(|l| vec![l]).collect()
            };
            if groups.len() != items {
                return Err(Error::format(
                    one,
                    format!(
                        "{} reference groups for {items} hypotheses (groups are separated by an \
                         empty line; without empty lines each line is one item's reference)",
                        groups.len()
                    ),
                ));
            }
            Ok(groups)
        }
        many => {
            let mut groups = vec![Vec::new(); items];
            for path in many {
                let file = lines(&read_text(path)?);
                if file.len() != items {
                    return Err(Error::format(
                        path,
                        format!(
                            "{} lines for {items} hypotheses: a parallel reference file holds \
                             one line per hypothesis",
                            file.len()
                        ),
                    ));
                }
                for (group, line) in groups.iter_mut().zip(file) {
                    if !line.trim().is_empty() {
                        group.push(line);
                    }
                }
            }
            Ok(groups)
        }
    }
}
