//! TFTP packets on the wire (RFC 1350 §5, RFC 2347 OACK). All integers are big-endian.

use std::borrow::Cow;

/// Opcodes.
pub mod opcode {
    /// Read request.
    pub const RRQ: u16 = 1;
    /// Write request.
    pub const WRQ: u16 = 2;
    /// Data.
    pub const DATA: u16 = 3;
    /// Acknowledgment.
    pub const ACK: u16 = 4;
    /// Error.
    pub const ERROR: u16 = 5;
    /// Option acknowledgment (RFC 2347).
    pub const OACK: u16 = 6;
}

/// TFTP error codes (RFC 1350 §5, RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// 0: not defined, see the message.
    NotDefined = 0,
    /// 1: file not found.
    FileNotFound = 1,
    /// 2: access violation.
    AccessViolation = 2,
    /// 3: disk full or allocation exceeded.
    DiskFull = 3,
    /// 4: illegal TFTP operation.
    IllegalOperation = 4,
    /// 5: unknown transfer ID.
    UnknownTransferId = 5,
    /// 6: file already exists.
    FileExists = 6,
    /// 7: no such user.
    NoSuchUser = 7,
    /// 8: terminate transfer due to option negotiation.
    OptionNegotiation = 8,
}

impl ErrorCode {
    /// The code for a number (unknown numbers read as [`ErrorCode::NotDefined`]).
    pub fn from_u16(n: u16) -> ErrorCode {
        match n {
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTransferId,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionNegotiation,
            _ => ErrorCode::NotDefined,
        }
    }
}

/// A transfer mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `octet`: bytes as they are.
    Octet,
    /// `netascii`: Telnet NVT line ends (LF ↔ CR LF, CR ↔ CR NUL).
    NetAscii,
    /// `mail`: obsolete; refused.
    Mail,
}

impl Mode {
    /// Parses a mode name, case-insensitively.
    pub fn parse(s: &str) -> Option<Mode> {
        match s.to_ascii_lowercase().as_str() {
            "octet" => Some(Mode::Octet),
            "netascii" => Some(Mode::NetAscii),
            "mail" => Some(Mode::Mail),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::NetAscii => "netascii",
            Mode::Mail => "mail",
        }
    }
}

/// A decoded packet, borrowing from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request: file name, mode, options (name and value as sent).
    Rrq {
        /// The file name as sent.
        filename: Cow<'a, str>,
        /// The mode name as sent.
        mode: Cow<'a, str>,
        /// Options in the order sent.
        options: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    },
    /// Write request.
    Wrq {
        /// The file name as sent.
        filename: Cow<'a, str>,
        /// The mode name as sent.
        mode: Cow<'a, str>,
        /// Options in the order sent.
        options: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    },
    /// A block of data.
    Data {
        /// Block number on the wire.
        block: u16,
        /// The payload.
        data: &'a [u8],
    },
    /// An acknowledgment.
    Ack {
        /// Block number on the wire.
        block: u16,
    },
    /// An error.
    Error {
        /// The code as sent.
        code: u16,
        /// The message.
        message: Cow<'a, str>,
    },
    /// Option acknowledgment.
    Oack {
        /// Accepted options, in order.
        options: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    },
}

/// A datagram that is not a valid TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than an opcode (and block number).
    #[error("packet too short ({0} bytes)")]
    TooShort(usize),
    /// Unknown opcode.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A string field is not NUL-terminated.
    #[error("a string field is not terminated by NUL")]
    Unterminated,
    /// Options come in name/value pairs.
    #[error("option {0:?} has no value")]
    OptionWithoutValue(String),
    /// A request without a file name or mode.
    #[error("request without {0}")]
    Missing(&'static str),
}

fn strings(body: &[u8]) -> Result<Vec<Cow<'_, str>>, PacketError> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == 0).ok_or(PacketError::Unterminated)?;
        out.push(String::from_utf8_lossy(&rest[..end]));
        rest = &rest[end + 1..];
    }
    Ok(out)
}

type Options<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn pairs(items: Vec<Cow<'_, str>>) -> Result<Options<'_>, PacketError> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(name) = it.next() {
        let value = it.next().ok_or_else(|| PacketError::OptionWithoutValue(name.to_string()))?;
        out.push((name, value));
    }
    Ok(out)
}

fn request(body: &[u8]) -> Result<(Cow<'_, str>, Cow<'_, str>, Options<'_>), PacketError> {
    let mut items = strings(body)?.into_iter();
    let filename = items.next().ok_or(PacketError::Missing("a file name"))?;
    let mode = items.next().ok_or(PacketError::Missing("a mode"))?;
    // Some clients pad requests with NULs after the options: empty trailing strings are ignored.
    let rest: Vec<Cow<'_, str>> = items.collect();
    let trimmed = rest.len() - rest.iter().rev().take_while(|s| s.is_empty()).count();
    Ok((filename, mode, pairs(rest.into_iter().take(trimmed).collect())?))
}

impl<'a> Packet<'a> {
    /// Decodes a datagram.
    pub fn decode(datagram: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        if datagram.len() < 2 {
            return Err(PacketError::TooShort(datagram.len()));
        }
        let op = u16::from_be_bytes([datagram[0], datagram[1]]);
        let body = &datagram[2..];
        let block = || -> Result<u16, PacketError> {
            if body.len() < 2 {
                return Err(PacketError::TooShort(datagram.len()));
            }
            Ok(u16::from_be_bytes([body[0], body[1]]))
        };
        Ok(match op {
            opcode::RRQ => {
                let (filename, mode, options) = request(body)?;
                Packet::Rrq { filename, mode, options }
            }
            opcode::WRQ => {
                let (filename, mode, options) = request(body)?;
                Packet::Wrq { filename, mode, options }
            }
            opcode::DATA => Packet::Data { block: block()?, data: &body[2..] },
            opcode::ACK => Packet::Ack { block: block()? },
            opcode::ERROR => {
                let code = block()?;
                let msg = &body[2..];
                // Be lenient about a missing final NUL in error messages: they only get logged.
                let end = msg.iter().position(|&b| b == 0).unwrap_or(msg.len());
                Packet::Error { code, message: String::from_utf8_lossy(&msg[..end]) }
            }
            opcode::OACK => Packet::Oack { options: pairs(strings(body)?)? },
            other => return Err(PacketError::UnknownOpcode(other)),
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Writes a RRQ (or WRQ when `write` is true).
pub fn encode_request(out: &mut Vec<u8>, write: bool, filename: &str, mode: &str, options: &[(&str, String)]) {
    out.clear();
    out.extend_from_slice(&(if write { opcode::WRQ } else { opcode::RRQ }).to_be_bytes());
    put_str(out, filename);
    put_str(out, mode);
    for (n, v) in options {
        put_str(out, n);
        put_str(out, v);
    }
}

/// Writes a DATA packet.
pub fn encode_data(out: &mut Vec<u8>, block: u16, data: &[u8]) {
    out.clear();
    out.extend_from_slice(&opcode::DATA.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
    out.extend_from_slice(data);
}

/// Writes an ACK packet.
pub fn encode_ack(out: &mut Vec<u8>, block: u16) {
    out.clear();
    out.extend_from_slice(&opcode::ACK.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
}

/// Writes an ERROR packet.
pub fn encode_error(out: &mut Vec<u8>, code: ErrorCode, message: &str) {
    out.clear();
    out.extend_from_slice(&opcode::ERROR.to_be_bytes());
    out.extend_from_slice(&(code as u16).to_be_bytes());
    put_str(out, message);
}

/// Writes an OACK packet.
pub fn encode_oack(out: &mut Vec<u8>, options: &[(String, String)]) {
    out.clear();
    out.extend_from_slice(&opcode::OACK.to_be_bytes());
    for (n, v) in options {
        put_str(out, n);
        put_str(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// `specs.md` §3.1: requests captured from real clients.
    #[test]
    fn captured_requests() {
        let p = hex("000166333030302e62696e006f6374657400");
        assert_eq!(
            Packet::decode(&p).unwrap(),
            Packet::Rrq { filename: "f3000.bin".into(), mode: "octet".into(), options: vec![] }
        );
        let curl =
            hex("000166333030302e62696e006f63746574007473697a65003000626c6b73697a65003531320074696d656f7574003600");
        let Packet::Rrq { options, .. } = Packet::decode(&curl).unwrap() else { panic!() };
        let o: Vec<(&str, &str)> = options.iter().map(|(a, b)| (a.as_ref(), b.as_ref())).collect();
        assert_eq!(o, [("tsize", "0"), ("blksize", "512"), ("timeout", "6")]);
        let mut out = Vec::new();
        encode_request(&mut out, false, "f3000.bin", "octet", &[("tsize", "0".into())]);
        assert_eq!(out, hex("000166333030302e62696e006f63746574007473697a65003000"));
    }

    /// `specs.md` §3.1: ACK of OACK, tftpd-hpa ERROR 1 and OACK.
    #[test]
    fn captured_replies() {
        let mut out = Vec::new();
        encode_ack(&mut out, 0);
        assert_eq!(out, hex("00040000"));
        encode_error(&mut out, ErrorCode::FileNotFound, "File not found");
        assert_eq!(out, hex("0005000146696c65206e6f7420666f756e6400"));
        encode_oack(&mut out, &[("BLKSIZE".into(), "1468".into()), ("TSize".into(), "3000".into())]);
        assert_eq!(out, hex("0006424c4b53495a450031343638005453697a65003330303000"));
        assert_eq!(
            Packet::decode(&out).unwrap(),
            Packet::Oack { options: vec![("BLKSIZE".into(), "1468".into()), ("TSize".into(), "3000".into())] }
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(Packet::decode(&[0]), Err(PacketError::TooShort(1)));
        assert_eq!(Packet::decode(&[0, 9, 0, 0]), Err(PacketError::UnknownOpcode(9)));
        assert_eq!(Packet::decode(&[0, 1, b'a']), Err(PacketError::Unterminated));
        assert_eq!(Packet::decode(&[0, 1, b'a', 0]), Err(PacketError::Missing("a mode")));
        assert!(matches!(Packet::decode(b"\x00\x01a\x00octet\x00tsize\x00"), Err(PacketError::OptionWithoutValue(_))));
        assert_eq!(Packet::decode(&[0, 4, 0]), Err(PacketError::TooShort(3)));
        assert_eq!(Packet::decode(&[0, 3, 0, 1]).unwrap(), Packet::Data { block: 1, data: &[] });
        assert!(Packet::decode(b"\x00\x01a\x00octet\x00\x00\x00").is_ok(), "trailing NUL padding");
    }
}
