//! Streaming writer of a backup tarball: gzip over tar, written entry by entry into any
//! `AsyncWrite`, holding at most one entry in memory.

use std::time::{SystemTime, UNIX_EPOCH};

use async_compression::tokio::write::GzipEncoder;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::{VERSION_ENTRY, version_file_contents};

/// Writes Velero's tarball: regular files only, mode 0755, modification time now, no directory
/// entries (Velero's `pkg/backup/backup.go`). [`TarballWriter::new`] writes `metadata/version` first.
pub struct TarballWriter<W: AsyncWrite + Unpin> {
    gzip: GzipEncoder<W>,
    // Builds each entry's header block(s); drained after every entry, so it never grows past one.
    headers: tar::Builder<Vec<u8>>,
    mtime: u64,
    entries: u64,
    bytes: u64,
}

impl<W: AsyncWrite + Unpin> TarballWriter<W> {
    pub async fn new(inner: W) -> std::io::Result<Self> {
        let mut writer = TarballWriter {
            gzip: GzipEncoder::with_quality(inner, async_compression::Level::Fastest),
            headers: tar::Builder::new(Vec::new()),
            mtime: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            entries: 0,
            bytes: 0,
        };
        writer
            .append(VERSION_ENTRY, version_file_contents().as_bytes())
            .await?;
        Ok(writer)
    }

    /// Appends one regular file.
    pub async fn append(&mut self, path: &str, data: &[u8]) -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o755);
        header.set_mtime(self.mtime);
        header.set_size(data.len() as u64);
        // Names past 100 bytes get a GNU long-name record, which Go's archive/tar reads.
        self.headers.append_data(&mut header, path, data)?;
        let block = std::mem::take(self.headers.get_mut());
        self.gzip.write_all(&block).await?;
        self.entries += 1;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Entries written so far, `metadata/version` included.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Uncompressed bytes of entry contents written so far.
    pub fn content_bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes the end-of-archive marker, flushes the gzip trailer and shuts the inner writer down
    /// (which completes a multipart upload). Returns the inner writer.
    pub async fn finish(mut self) -> std::io::Result<W> {
        // Two zero blocks end a tar archive.
        self.gzip.write_all(&[0u8; 1024]).await?;
        self.gzip.shutdown().await?;
        Ok(self.gzip.into_inner())
    }
}
