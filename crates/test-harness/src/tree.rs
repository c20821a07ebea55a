//! Comparing directory trees as a restore must reproduce them: every entry's kind, permission
//! bits, a regular file's modification time (seconds) and content, a link's target.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Kind, mode, mtime and content (or link target) of one entry.
type Entry = (String, u32, i64, Vec<u8>);

fn inventory(root: &Path) -> std::io::Result<BTreeMap<PathBuf, Entry>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let meta = fs::symlink_metadata(&path)?;
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            let mode = meta.mode() & 0o7777;
            let (kind, content) = if meta.file_type().is_symlink() {
                (
                    "link",
                    fs::read_link(&path)?.into_os_string().into_encoded_bytes(),
                )
            } else if meta.is_dir() {
                stack.push(path.clone());
                ("dir", Vec::new())
            } else {
                ("file", fs::read(&path)?)
            };
            let mtime = if kind == "file" { meta.mtime() } else { 0 };
            out.insert(rel, (kind.to_string(), mode, mtime, content));
        }
    }
    Ok(out)
}

/// `Err` naming the first difference between the trees under `expected` and `actual`.
pub fn same_tree(expected: &Path, actual: &Path) -> Result<(), String> {
    let read = |p: &Path| inventory(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let (a, b) = (read(expected)?, read(actual)?);
    if a.len() != b.len() {
        return Err(format!(
            "{} entries expected, {} found in {}",
            a.len(),
            b.len(),
            actual.display()
        ));
    }
    for (path, want) in &a {
        let got = b
            .get(path)
            .ok_or_else(|| format!("{} is missing", path.display()))?;
        if (&got.0, got.1, got.2) != (&want.0, want.1, want.2) {
            return Err(format!(
                "{}: {:?} differs from {:?}",
                path.display(),
                (&got.0, got.1, got.2),
                (&want.0, want.1, want.2)
            ));
        }
        if got.3 != want.3 {
            return Err(format!("{}: content differs", path.display()));
        }
    }
    Ok(())
}
