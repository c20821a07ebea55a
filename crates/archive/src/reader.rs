//! Reading a backup tarball.

use std::collections::BTreeMap;
use std::io::Read;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the backup tarball is corrupt or not a gzip-compressed tar: {0}")]
    Corrupt(#[source] std::io::Error),
    #[error("the backup tarball has an entry escaping the archive: {0:?}")]
    UnsafePath(String),
}

/// Hands every regular file of a tarball to `visit` in archive order, one at a time, so memory
/// stays bounded by the largest entry. Stops early when `visit` returns `false`. A truncated or
/// corrupt stream is an error, as is an entry whose path escapes the archive: callers must not act
/// on a tarball that fails here.
pub fn for_each_entry(
    tar_gz: impl Read,
    mut visit: impl FnMut(String, Vec<u8>) -> bool,
) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
    for entry in archive.entries().map_err(ArchiveError::Corrupt)? {
        let mut entry = entry.map_err(ArchiveError::Corrupt)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry
            .path()
            .map_err(ArchiveError::Corrupt)?
            .to_string_lossy()
            .into_owned();
        if path.starts_with('/') || path.split('/').any(|p| p == "..") {
            return Err(ArchiveError::UnsafePath(path));
        }
        let mut data = Vec::with_capacity(entry.size().min(1 << 20) as usize);
        entry
            .read_to_end(&mut data)
            .map_err(ArchiveError::Corrupt)?;
        if !visit(path, data) {
            return Ok(());
        }
    }
    Ok(())
}

/// Every regular file of a tarball, by path. For tests and small archives: it holds them all.
pub fn read_all(tar_gz: impl Read) -> Result<BTreeMap<String, Vec<u8>>, ArchiveError> {
    let mut out = BTreeMap::new();
    for_each_entry(tar_gz, |path, data| {
        out.insert(path, data);
        true
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TarballWriter;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn written_entries_read_back_with_long_names() {
        let long = format!(
            "resources/customresourcedefinitions.apiextensions.k8s.io/v1-preferredversion/cluster/{}.json",
            "x".repeat(120)
        );
        let bytes = block_on(async {
            let mut w = TarballWriter::new(Vec::new()).await.unwrap();
            w.append(
                "resources/pods/namespaces/app/web-0.json",
                b"{\"kind\":\"Pod\"}",
            )
            .await
            .unwrap();
            w.append(&long, b"{}").await.unwrap();
            assert_eq!(w.entries(), 3);
            w.finish().await.unwrap()
        });
        let entries = read_all(&bytes[..]).unwrap();
        assert_eq!(entries["metadata/version"], b"1.1.0\n");
        assert_eq!(
            entries["resources/pods/namespaces/app/web-0.json"],
            b"{\"kind\":\"Pod\"}"
        );
        assert_eq!(entries[&long], b"{}");
        assert_eq!(entries.len(), 3);
    }

    #[test]
    fn entries_are_regular_files_with_velero_mode() {
        let bytes = block_on(async {
            let w = TarballWriter::new(Vec::new()).await.unwrap();
            w.finish().await.unwrap()
        });
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.header().mode().unwrap(), 0o755);
        assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
    }

    #[test]
    fn corrupt_input_is_reported_as_such() {
        let err = read_all(&b"definitely not gzip"[..]).unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    #[test]
    fn escaping_paths_are_refused() {
        let mut raw = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses "..", so write the name bytes directly as a hostile archive would.
        h.as_old_mut().name[..16].copy_from_slice(b"../../etc/passwd");
        h.set_cksum();
        raw.append(&h, &b"{}"[..]).unwrap();
        let tar = raw.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let err = read_all(&gz.finish().unwrap()[..]).unwrap_err();
        assert!(matches!(err, ArchiveError::UnsafePath(_)), "{err}");
    }
}
