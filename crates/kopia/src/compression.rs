//! Content compression (kopia's repo/compression): a 4-byte big-endian header naming the
//! compressor, then its stream. The index entry says whether a content was compressed.

use std::io::Read as _;

/// `zstd-fastest`, what Velero's kopia writes for metadata (directory objects, object tables).
pub const ZSTD_FASTEST: u32 = 0x1101;
const ZSTD: [u32; 4] = [0x1100, 0x1101, 0x1102, 0x1103];
const GZIP: [u32; 3] = [0x1000, 0x1001, 0x1002];
const PGZIP: [u32; 3] = [0x1300, 0x1301, 0x1302];
const DEFLATE: [u32; 3] = [0x1500, 0x1501, 0x1502];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    #[error(
        "compressed with {0:#06x}, which velero-rs does not read (it reads zstd, gzip and deflate)"
    )]
    Unknown(u32),
    #[error("the compression header says {found:#06x}, the index {expected:#06x}")]
    Header { expected: u32, found: u32 },
    #[error("decompressing: {0}")]
    Stream(String),
}

/// The content's bytes from what was stored with compressor `id` (0: stored as is).
pub fn decompress(id: u32, stored: Vec<u8>) -> Result<Vec<u8>, CompressionError> {
    if id == 0 {
        return Ok(stored);
    }
    let Some((header, body)) = stored.split_first_chunk::<4>() else {
        return Err(CompressionError::Stream("shorter than its header".into()));
    };
    let found = u32::from_be_bytes(*header);
    if found != id {
        return Err(CompressionError::Header {
            expected: id,
            found,
        });
    }
    let mut out = Vec::new();
    let stream = |e: std::io::Error| CompressionError::Stream(e.to_string());
    if ZSTD.contains(&id) {
        zstd::stream::read::Decoder::new(body)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(stream)?;
    } else if GZIP.contains(&id) || PGZIP.contains(&id) {
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(stream)?;
    } else if DEFLATE.contains(&id) {
        flate2::read::DeflateDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(stream)?;
    } else {
        return Err(CompressionError::Unknown(id));
    }
    Ok(out)
}

/// `data` compressed with zstd at its fastest level behind kopia's header, when that is smaller
/// (kopia stores the content uncompressed otherwise).
pub fn compress_zstd_fastest(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = ZSTD_FASTEST.to_be_bytes().to_vec();
    let body = zstd::bulk::compress(data, 1).ok()?;
    out.extend_from_slice(&body);
    (out.len() < data.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_contents_come_back() {
        let data = b"{\"stream\":\"kopia:directory\",\"entries\":[]}".repeat(20);
        let packed = compress_zstd_fastest(&data).unwrap();
        assert_eq!(&packed[..4], &[0, 0, 0x11, 0x01]);
        assert_eq!(decompress(ZSTD_FASTEST, packed.clone()).unwrap(), data);
        assert!(matches!(
            decompress(0x1100, packed),
            Err(CompressionError::Header { .. })
        ));
        assert!(compress_zstd_fastest(b"ab").is_none());
        assert_eq!(decompress(0, b"raw".to_vec()).unwrap(), b"raw");
        assert!(matches!(
            decompress(0x1400, vec![0, 0, 0x14, 0, 1]),
            Err(CompressionError::Unknown(0x1400))
        ));
    }
}
