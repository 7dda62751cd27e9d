//! Atomic file writes: write a temporary file beside the target, fsync it, rename it over the
//! target, fsync the directory. A crash leaves either the old or the new file, never half.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Fails when writing `output` would overwrite `source`: the same file or folder once links
/// and relative parts are resolved (hard links included).
/// `what` names the option that gave `output` in the message.
pub fn refuse_overwrite(output: &Path, source: &Path, what: &str) -> Result<()> {
    let out = resolve(output);
    let src = resolve(source);
    let same = out == src || same_inode(output, source);
    if same {
        return Err(Error::InvalidInput(format!(
            "{what} {} would overwrite the input {}: write the output somewhere else",
            output.display(),
            source.display()
        )));
    }
    Ok(())
}

/// `path` made absolute with links resolved as far as it exists (a file not yet written
/// resolves through its folder).
fn resolve(path: &Path) -> std::path::PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => resolve(parent).join(name),
        _ => absolute,
    }
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: &Path, _: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_output_onto_its_input_is_refused_through_links_and_dots() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.jsonl");
        std::fs::write(&data, "x").unwrap();
        let check = |out: &std::path::Path| super::refuse_overwrite(out, &data, "--output");
        assert!(check(&data).is_err());
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(check(&dir.path().join("sub/../data.jsonl")).is_err());
        let link = dir.path().join("link.jsonl");
        std::fs::hard_link(&data, &link).unwrap();
        assert!(check(&link).is_err(), "a hard link is the same file");
        #[cfg(unix)]
        {
            let sym = dir.path().join("sym");
            std::os::unix::fs::symlink(dir.path(), &sym).unwrap();
            assert!(check(&sym.join("data.jsonl")).is_err());
        }
        let err = check(&data).unwrap_err().to_string();
        assert!(
            err.contains("--output") && err.contains("overwrite"),
            "{err}"
        );
        assert!(check(&dir.path().join("out.jsonl")).is_ok());
        assert_eq!(
            std::fs::read(&data).unwrap(),
            b"x",
            "the input is untouched"
        );
    }

    #[test]
    fn replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        super::write_atomic(&p, b"one").unwrap();
        super::write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
