//! `netascii` mode: Telnet NVT line ends (RFC 764 via RFC 1350): LF is sent as CR LF and a bare CR as CR NUL.

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
