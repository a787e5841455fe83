//! `netascii` mode: Telnet NVT line ends (RFC 764 via RFC 1350): LF is sent as CR LF and a bare CR as CR NUL.

use std::io;
use std::sync::Arc;

use crate::content::Content;

/// Encodes local text for the wire.
pub fn encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    for &b in data {
        match b {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            b => out.push(b),
        }
    }
    out
}

/// Content converted to netascii as it is read, in bounded memory: one pass counts the converted length (a read
/// transfer needs it to know its last block), keeping a checkpoint every [`NetasciiContent::STRIDE`] source bytes so
/// that a read at any offset (a retransmitted window) converts at most one stride.
pub struct NetasciiContent {
    inner: Arc<dyn Content>,
    /// Converted offset of source offsets 0, STRIDE, 2 × STRIDE, ...
    checkpoints: Vec<u64>,
    len: u64,
}

impl NetasciiContent {
    /// Source bytes between checkpoints.
    pub const STRIDE: u64 = 8 * 1024;

    /// Wraps `inner`, reading it once to count the converted length.
    pub fn new(inner: Arc<dyn Content>) -> io::Result<NetasciiContent> {
        let size = inner.len();
        let mut checkpoints = Vec::with_capacity((size / Self::STRIDE + 1) as usize);
        let mut buf = vec![0u8; Self::STRIDE as usize];
        let (mut at, mut len) = (0u64, 0u64);
        while at < size {
            checkpoints.push(len);
            let want = (size - at).min(Self::STRIDE) as usize;
            let n = inner.read_at(at, &mut buf[..want])?;
            if n < want {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file changed size"));
            }
            len += n as u64 + buf[..n].iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64;
            at += n as u64;
        }
        Ok(NetasciiContent { inner, checkpoints, len })
    }
}

impl Content for NetasciiContent {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        // The last checkpoint at or before `offset`.
        let i = self.checkpoints.partition_point(|&c| c <= offset).saturating_sub(1);
        let (mut src, mut out_at) = (i as u64 * Self::STRIDE, self.checkpoints[i]);
        let size = self.inner.len();
        let mut chunk = vec![0u8; (Self::STRIDE as usize).min(buf.len() + 1).max(4096)];
        let mut done = 0;
        while done < buf.len() && src < size {
            let want = ((size - src) as usize).min(chunk.len());
            let n = self.inner.read_at(src, &mut chunk[..want])?;
            if n == 0 {
                break;
            }
            for &b in &chunk[..n] {
                let bytes: &[u8] = match b {
                    b'\n' => b"\r\n",
                    b'\r' => b"\r\0",
                    _ => std::slice::from_ref(&b),
                };
                for &e in bytes {
                    if out_at >= offset && done < buf.len() {
                        buf[done] = e;
                        done += 1;
                    }
                    out_at += 1;
                }
                if done == buf.len() {
                    break;
                }
            }
            src += n as u64;
        }
        Ok(done)
    }
}

/// Decodes wire text: CR LF becomes LF, CR NUL becomes CR; `pending_cr` carries a CR across chunk boundaries.
pub fn decode(data: &[u8], pending_cr: &mut bool, out: &mut Vec<u8>) {
    for &b in data {
        if *pending_cr {
            *pending_cr = false;
            match b {
                b'\n' => {
                    out.push(b'\n');
                    continue;
                }
                0 => {
                    out.push(b'\r');
                    continue;
                }
                _ => out.push(b'\r'),
            }
        }
        if b == b'\r' {
            *pending_cr = true;
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed conversion equals the whole-file one at every offset and read size, across checkpoints.
    #[test]
    fn streamed_conversion_matches_the_whole_file() {
        let mut text = Vec::new();
        for i in 0..40_000u32 {
            text.extend_from_slice(format!("line {i}").as_bytes());
            text.push(match i % 3 {
                0 => b'\n',
                1 => b'\r',
                _ => b'x',
            });
        }
        let whole = encode(&text);
        let streamed = NetasciiContent::new(Arc::new(text)).unwrap();
        assert_eq!(streamed.len(), whole.len() as u64);
        let stride = NetasciiContent::STRIDE as usize;
        for (offset, size) in [(0, 512), (1, 1), (stride - 3, 1468), (stride + 7, 65_000), (whole.len() - 5, 512)] {
            let mut buf = vec![0u8; size];
            let n = streamed.read_at(offset as u64, &mut buf).unwrap();
            let end = (offset + size).min(whole.len());
            assert_eq!(&buf[..n], &whole[offset..end], "offset {offset} size {size}");
        }
    }

    /// `specs.md` §3.1: tftpd-hpa turns `line2\r\n` into `line2\r\0\r\n`.
    #[test]
    fn tftpd_hpa_example() {
        assert_eq!(encode(b"line2\r\n"), b"line2\r\0\r\n");
        let mut out = Vec::new();
        let mut cr = false;
        for chunk in b"line2\r\0\r\n".chunks(1) {
            decode(chunk, &mut cr, &mut out);
        }
        assert_eq!(out, b"line2\r\n");
    }
}
