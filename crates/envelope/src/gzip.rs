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

/// A piece of text compressed on its own as raw deflate blocks that end on a byte boundary with no final block
/// (zlib's full flush: the dictionary starts empty after it), with its CRC-32 and length, so that pieces can be
/// compressed once, shared, and joined in any order into one gzip member ([`join`]) that any inflater reads as one
/// stream (RFC 1951 §3.2.3: a stream is a sequence of blocks, the last one flagged; RFC 1952 §2.3.1: the trailer's
/// CRC-32 and size are of the whole text, combined here from the pieces').
pub struct Piece {
    deflate: Vec<u8>,
    crc: flate2::Crc,
}

impl std::fmt::Debug for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Piece({} bytes of text in {} bytes)", self.crc.amount(), self.deflate.len())
    }
}

impl Piece {
    /// Compresses `text` at `level` (0-9).
    pub fn new(text: &[u8], level: u32) -> Piece {
        thread_local! {
            /// This thread's deflate state and its level: reset for each piece rather than made anew (a state is
            /// some 300 KB of window and tables, more than a device's own lines).
            static DEFLATE: std::cell::RefCell<Option<(u32, flate2::Compress)>> = const { std::cell::RefCell::new(None) };
        }
        let level = level.min(9);
        DEFLATE.with(|cell| {
            let mut cell = cell.borrow_mut();
            match &mut *cell {
                Some((l, z)) if *l == level => {
                    z.reset();
                    Piece::with(z, text)
                }
                slot => Piece::with(
                    &mut slot.insert((level, flate2::Compress::new(Compression::new(level), false))).1,
                    text,
                ),
            }
        })
    }

    /// `text` through a fresh (or freshly reset) raw deflate state `z`.
    fn with(z: &mut flate2::Compress, text: &[u8]) -> Piece {
        let mut deflate = Vec::with_capacity(text.len() / 3 + 64);
        loop {
            let done = z.total_in() as usize;
            deflate.reserve((text.len() - done) / 2 + 1024);
            // Raw deflate into a Vec cannot fail; the loop ends when all input is in and the flush had room.
            let _ = z.compress_vec(&text[done..], &mut deflate, flate2::FlushCompress::Full);
            if z.total_in() as usize == text.len() && deflate.len() < deflate.capacity() {
                break;
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(text);
        Piece { deflate, crc }
    }

    /// The compressed bytes.
    pub fn compressed_len(&self) -> usize {
        self.deflate.len()
    }
}

/// One gzip member of `pieces` in order: the same text as their concatenation, and the same as [`compress`] to any
/// reader (the bytes differ: each piece was compressed on its own).
pub fn join<'a>(pieces: impl IntoIterator<Item = &'a Piece> + Clone) -> Vec<u8> {
    // The header flate2's GzEncoder writes: no name, no time, OS unknown.
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    // An empty fixed-Huffman block with BFINAL set (what a finish on no input writes after a full flush).
    const LAST: [u8; 2] = [0x03, 0x00];
    let size: usize = pieces.clone().into_iter().map(|p| p.deflate.len()).sum();
    let mut out = Vec::with_capacity(HEADER.len() + size + LAST.len() + 8);
    out.extend_from_slice(&HEADER);
    let mut crc = flate2::Crc::new();
    for p in pieces {
        out.extend_from_slice(&p.deflate);
        crc.combine(&p.crc);
    }
    out.extend_from_slice(&LAST);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    out
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

    proptest::proptest! {
        /// Pieces compressed apart and joined read back as their concatenation, with flate2's reader and zlib's
        /// own CRC and length checks, at every level, in any split, including empty pieces.
        #[test]
        fn joined_pieces_are_one_gzip_member(
            parts in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000), 0..6),
            level in 0u32..10,
        ) {
            let pieces: Vec<Piece> = parts.iter().map(|p| Piece::new(p, level)).collect();
            let joined = join(&pieces);
            proptest::prop_assert!(is_gzip(&joined));
            proptest::prop_assert_eq!(decompress(&joined, 1 << 24).unwrap(), parts.concat());
        }
    }

    #[test]
    fn joined_pieces_of_profile_text_compress_about_as_well_as_the_whole() {
        let line =
            |i: usize| format!("\n  <Bench_Param_{i:04} ua=\"na\">sip proxy line {i} call park</Bench_Param_{i:04}>");
        let text: String = (0..560).map(line).collect();
        let whole = compress_at(text.as_bytes(), 3).len();
        let cut = [0, 100, 101, 300, 301, 560].map(|i| text.find(&line(i.min(559))).unwrap());
        let pieces: Vec<Piece> = cut.windows(2).map(|w| Piece::new(&text.as_bytes()[w[0]..w[1]], 3)).collect();
        let rest = Piece::new(&text.as_bytes()[cut[5]..], 3);
        let joined = join(pieces.iter().chain([&rest]));
        assert_eq!(decompress(&joined, 1 << 24).unwrap(), text.as_bytes());
        // Each piece starts with an empty dictionary: a few per cent more bytes (this text is tiny and repetitive,
        // the worst case; BENCHMARKS.md has the served profile's figure).
        assert!(joined.len() < whole * 12 / 10, "{} vs {whole}", joined.len());
    }

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
