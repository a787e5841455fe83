//! gzip, the only compression a Cisco MPP phone accepts.
//!
//! Cisco "Provisioning Formats", *Open Profile Compression*: "the phone expects the compressed file to contain a
//! gzip compatible header. [...] The phone inspects the downloaded file header to determine the file format."

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

/// The two magic bytes that open every gzip member (RFC 1952 §2.3.1).
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `data` starts with a gzip header, which is all the phone checks.
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Compresses `data` into a gzip member at the default level, as `gzip profile.xml` does.
pub fn compress(data: &[u8]) -> Vec<u8> {
    compress_at(data, Compression::default().level())
}

/// Compresses `data` into a gzip member at `level` (0 = stored .. 9 = smallest; 1 is several times faster than the
/// default 6 on profile text for a few per cent more bytes, `BENCHMARKS.md`). Every level is plain gzip to the phone.
pub fn compress_at(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Compression::new(level.min(9)));
    // Writing into a Vec cannot fail: the only error source of GzEncoder<Vec<u8>> is the inner writer.
    encoder.write_all(data).expect("writing to a Vec never fails");
    encoder.finish().expect("writing to a Vec never fails")
}

/// Why a gzip stream could not be expanded.
#[derive(Debug, thiserror::Error)]
pub enum GzipError {
    /// The stream is truncated or its deflate data or CRC is corrupt.
    #[error("corrupt gzip data: {0}")]
    Corrupt(String),
    /// The expanded data would exceed the caller's limit (a "gzip bomb", or simply too large for a profile).
    #[error("gzip data expands to more than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Expands a gzip stream (all members, like `gunzip`), refusing to produce more than `limit` bytes.
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, GzipError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let mut decoder = MultiGzDecoder::new(data).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| GzipError::Corrupt(e.to_string()))?;
    if out.len() > limit {
        return Err(GzipError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let text = b"<flat-profile><GPP_A>1</GPP_A></flat-profile>\n".repeat(50);
        let packed = compress(&text);
        assert!(is_gzip(&packed));
        assert_eq!(decompress(&packed, 1 << 20).unwrap(), text);
    }

    #[test]
    fn truncated_stream_is_corrupt() {
        let packed = compress(&b"x".repeat(1000));
        let err = decompress(&packed[..packed.len() - 6], 1 << 20).unwrap_err();
        assert!(matches!(err, GzipError::Corrupt(_)), "{err}");
    }

    #[test]
    fn bomb_is_refused() {
        let packed = compress(&vec![0u8; 100_000]);
        let err = decompress(&packed, 10_000).unwrap_err();
        assert!(matches!(err, GzipError::TooLarge { limit: 10_000 }));
    }

    #[test]
    fn limit_equal_to_size_is_accepted() {
        let packed = compress(&[7u8; 1000]);
        assert_eq!(decompress(&packed, 1000).unwrap().len(), 1000);
    }
}
