//! The two lines written for every request, formatted by hand: the access line of the server's log and the audit
//! line of `audit.log`. They are the server's hottest text (one of each per cached resync), and a general formatter
//! (tracing's, serde_json) cost a fifth of a cached answer (`BENCHMARKS.md`, issue 17). The output is byte for byte
//! what those formatters write, and tests compare the two.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::OnceLock;

/// Whether any of the eight bytes of `word` needs a JSON escape: a control character (below 0x20), `"` or `\`.
/// Exact as a yes or no: a borrow can set a byte's high bit wrongly only above a byte that truly matches.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let equal = |b: u8| below(word ^ (ONES * u64::from(b)), 1);
    (below(word, 0x20) | equal(b'"') | equal(b'\\')) != 0
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it: `"` and `\`, the short escapes `\b \f \n \r \t`,
/// other control characters as `\u00XX`, and everything else (non-ASCII included) as it is.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// Which bytes need an escape (control characters, `"` and `\\`): one load per byte instead of a match.
    const ESCAPED: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 0x20 {
            t[b] = true;
            b += 1;
        }
        t[b'"' as usize] = true;
        t[b'\\' as usize] = true;
        t
    };
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none needs an escape (paths, User-Agents and hashes seldom have one).
        if let Some(Ok(word)) = bytes.get(i..i + 8).map(<[u8; 8]>::try_from)
            && !needs_escape(u64::from_le_bytes(word))
        {
            i += 8;
            continue;
        }
        let b = bytes[i];
        i += 1;
        if !ESCAPED[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i - 1]);
        start = i;
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => {
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
                continue;
            }
        };
        out.extend_from_slice(escape);
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A field's value in a hand-written line.
pub enum Value<'a> {
    /// Text: a JSON string, or as it is in a text line.
    Text(&'a str),
    /// A signed integer.
    Signed(i64),
    /// An unsigned integer.
    Unsigned(u64),
    /// JSON's `null`.
    Null,
    /// A socket address, as `Display` writes it (written without the formatting machinery for IPv4).
    Address(SocketAddr),
    /// Unix milliseconds as an RFC 3339 UTC timestamp with milliseconds ([`push_rfc3339_ms`]).
    Rfc3339Ms(i64),
}

impl Value<'_> {
    /// Appends the value as JSON.
    fn push_json(&self, out: &mut Vec<u8>) {
        match self {
            Value::Text(t) => push_json_str(out, t),
            Value::Signed(n) => push_int(out, *n),
            Value::Unsigned(n) => push_int(out, *n),
            Value::Null => out.extend_from_slice(b"null"),
            // Digits, dots, colons, brackets and `%`: nothing to escape.
            Value::Address(a) => {
                out.push(b'"');
                push_address(out, a);
                out.push(b'"');
            }
            Value::Rfc3339Ms(ms) => {
                out.push(b'"');
                push_rfc3339_ms(out, *ms);
                out.push(b'"');
            }
        }
    }

    /// Appends the value as a text log line shows it (text as it is).
    fn push_text(&self, out: &mut Vec<u8>) {
        match self {
            Value::Text(t) => out.extend_from_slice(t.as_bytes()),
            Value::Null => out.extend_from_slice(b"null"),
            Value::Address(a) => push_address(out, a),
            Value::Rfc3339Ms(ms) => push_rfc3339_ms(out, *ms),
            Value::Signed(_) | Value::Unsigned(_) => self.push_json(out),
        }
    }
}

/// Appends `address` as its `Display` does (`192.0.2.1:5060`, `[2001:db8::1]:5060`): IPv4 by hand, since every
/// request's access and audit lines carry one; IPv6 (rare on phones' networks) through `Display`.
fn push_address(out: &mut Vec<u8>, address: &SocketAddr) {
    match address {
        SocketAddr::V4(a) => {
            let [a0, a1, a2, a3] = a.ip().octets();
            for (i, octet) in [a0, a1, a2, a3].into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_int(out, octet);
            }
            out.push(b':');
            push_int(out, a.port());
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{address}");
        }
    }
}

/// `address` as text, as `Display` writes it (IPv4 by hand, as in the access line).
pub fn address_text(address: &SocketAddr) -> String {
    let mut out = Vec::with_capacity(24);
    push_address(&mut out, address);
    // Only ASCII digits and punctuation (and `Display`'s own UTF-8 for IPv6).
    String::from_utf8(out).unwrap_or_else(|_| address.to_string())
}

/// Appends `"name":value` for each field, separated by commas (the braces are the caller's).
pub fn push_json_fields(out: &mut Vec<u8>, fields: &[(&str, Value)]) {
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(out, name);
        out.push(b':');
        value.push_json(out);
    }
}

/// Appends an integer in decimal.
fn push_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `YYYY-MM-DDTHH:MM:SS` (UTC) for `secs` seconds since 1970.
fn push_civil_time(out: &mut Vec<u8>, secs: i64) {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(out, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
}

/// Appends `n` as exactly `width` decimal digits (zero-padded; `n` below 10^width).
fn push_padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut n = n;
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// Appends `now` as RFC 3339 UTC with `decimals` digits of the second (3: milliseconds, 6: microseconds, as tracing's
/// formatter writes). The date part is formatted once a second per thread.
fn push_timestamp(out: &mut Vec<u8>, now: std::time::SystemTime, decimals: usize) {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(i64, Vec<u8>)> = const { RefCell::new((i64::MIN, Vec::new())) };
    }
    let (secs, nanos) = match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            // Before 1970: not worth a cache.
            let d = e.duration();
            let (s, n) = (-(d.as_secs() as i64), d.subsec_nanos());
            if n == 0 { (s, 0) } else { (s - 1, 1_000_000_000 - n) }
        }
    };
    SECOND.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            c.1.clear();
            push_civil_time(&mut c.1, secs);
            c.0 = secs;
        }
        out.extend_from_slice(&c.1);
    });
    out.push(b'.');
    push_padded(out, nanos / 10u32.pow(9 - decimals as u32), decimals);
    out.push(b'Z');
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2026-11-28T12:00:00.123Z`), appended.
pub fn push_rfc3339_ms(out: &mut Vec<u8>, ms: i64) {
    let t = match u64::try_from(ms) {
        Ok(ms) => std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        Err(_) => std::time::UNIX_EPOCH - std::time::Duration::from_millis(ms.unsigned_abs()),
    };
    push_timestamp(out, t, 3);
}

/// How `provisor serve` writes its log: the access line is formatted here the way that formatter would, and handed
/// to the same writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// tracing-subscriber's default (full) format without colours.
    Text,
    /// tracing-subscriber's JSON format.
    Json,
}

/// What writes a whole access line.
type LineWriter = Box<dyn Fn(&[u8]) + Send + Sync>;

/// Where access lines go once [`install_access_log`] ran.
struct AccessLog {
    format: LogFormat,
    write: LineWriter,
}

static ACCESS_LOG: OnceLock<AccessLog> = OnceLock::new();

/// Has access lines formatted here in `format` and given to `write` (whole lines, newline included), instead of going
/// through tracing's formatter. Call it once, with the same writer and format as the tracing subscriber's, and only
/// when that subscriber writes without colours. Whether a line is written at all is still the subscriber's decision
/// (`RUST_LOG`, target `provisor::access`).
pub fn install_access_log(format: LogFormat, write: impl Fn(&[u8]) + Send + Sync + 'static) {
    let _ = ACCESS_LOG.set(AccessLog { format, write: Box::new(write) });
}

/// One request as the access log shows it.
pub struct Access<'a> {
    /// `tftp`, `http`, `https`.
    pub protocol: &'static str,
    /// The client (after trusted proxies).
    pub client: SocketAddr,
    /// The device the answer was for, when known.
    pub device: Option<&'a str>,
    /// `GET`, `RRQ`, …
    pub method: &'static str,
    /// The file asked for, random profile paths masked.
    pub file: &'a str,
    /// The HTTP status (or the TFTP error's equivalent).
    pub status: u16,
    /// Bytes of the answer.
    pub bytes: u64,
    /// Milliseconds to the answer.
    pub ms: u64,
}

impl Access<'_> {
    /// Logs the line (target `provisor::access`, level INFO).
    pub fn log(&self) {
        if !tracing::enabled!(target: "provisor::access", tracing::Level::INFO) {
            return;
        }
        let Some(sink) = ACCESS_LOG.get() else {
            tracing::info!(
                target: "provisor::access",
                client = %self.client,
                device = %self.device.unwrap_or("-"),
                method = %self.method,
                file = %self.file,
                status = self.status,
                bytes = self.bytes,
                ms = self.ms,
                "{}",
                self.protocol
            );
            return;
        };
        thread_local! {
            /// The line's buffer, kept per thread (a line per request).
            static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(512));
        }
        let write = |line: &mut Vec<u8>| {
            line.clear();
            self.format(sink.format, std::time::SystemTime::now(), line);
            (sink.write)(line);
        };
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => write(&mut line),
            // Only if the writer logged an access line itself.
            Err(_) => write(&mut Vec::with_capacity(256)),
        });
    }

    /// The line as the tracing subscriber's `format` writes it at `now`, newline included.
    pub fn format(&self, format: LogFormat, now: std::time::SystemTime, out: &mut Vec<u8>) {
        let fields = [
            ("client", Value::Address(self.client)),
            ("device", Value::Text(self.device.unwrap_or("-"))),
            ("method", Value::Text(self.method)),
            ("file", Value::Text(self.file)),
            ("status", Value::Unsigned(u64::from(self.status))),
            ("bytes", Value::Unsigned(self.bytes)),
            ("ms", Value::Unsigned(self.ms)),
        ];
        match format {
            LogFormat::Text => {
                push_timestamp(out, now, 6);
                out.extend_from_slice(b"  INFO provisor::access: ");
                out.extend_from_slice(self.protocol.as_bytes());
                for (name, value) in fields {
                    out.push(b' ');
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'=');
                    value.push_text(out);
                }
            }
            LogFormat::Json => {
                out.extend_from_slice(b"{\"timestamp\":\"");
                push_timestamp(out, now, 6);
                out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{");
                push_json_fields(out, &[("message", Value::Text(self.protocol))]);
                out.push(b',');
                push_json_fields(out, &fields);
                out.extend_from_slice(b"},\"target\":\"provisor::access\"}");
            }
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn json_strings_are_serde_jsons(s in "\\PC*|[\\x00-\\x7f]*|.*") {
            let mut out = Vec::new();
            push_json_str(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn timestamps_are_rfc3339(ms in -10_000_000_000_000i64..100_000_000_000_000i64) {
            let mut out = Vec::new();
            push_rfc3339_ms(&mut out, ms);
            // The reference: the `time` crate's calendar.
            let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            );
            prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
        }

        #[test]
        fn addresses_are_displays(
            v4 in any::<[u8; 4]>(),
            v6 in any::<[u16; 8]>(),
            port in any::<u16>(),
            scope in prop_oneof![Just(0u32), any::<u32>()],
        ) {
            let ip6 = std::net::Ipv6Addr::new(v6[0], v6[1], v6[2], v6[3], v6[4], v6[5], v6[6], v6[7]);
            for address in [
                SocketAddr::from((v4, port)),
                SocketAddr::V6(std::net::SocketAddrV6::new(ip6, port, 0, scope)),
                SocketAddr::from((ip6.to_ipv4_mapped().map_or(ip6, |v| v.to_ipv6_mapped()), port)),
            ] {
                prop_assert_eq!(address_text(&address), address.to_string());
                let mut json = Vec::new();
                Value::Address(address).push_json(&mut json);
                prop_assert_eq!(String::from_utf8(json).unwrap(), serde_json::to_string(&address.to_string()).unwrap());
            }
        }
    }

    /// A writer the tests read back.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The access line through tracing-subscriber's own formatter (what [`Access::log`] does without a sink), in
    /// `format`, and the line formatted here at the time tracing's shows.
    fn both(access: &Access, format: LogFormat) -> (String, String) {
        let captured = Captured::default();
        let writer = captured.clone();
        let builder = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false);
        let dispatch = match format {
            LogFormat::Text => tracing::Dispatch::new(builder.finish()),
            LogFormat::Json => tracing::Dispatch::new(builder.json().finish()),
        };
        tracing::dispatcher::with_default(&dispatch, || access.log());
        let theirs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        // Their timestamp, to format ours at the same instant.
        let stamp = match format {
            LogFormat::Text => theirs.split(' ').next().unwrap().to_string(),
            LogFormat::Json => {
                serde_json::from_str::<serde_json::Value>(&theirs).unwrap()["timestamp"].as_str().unwrap().to_string()
            }
        };
        let (date, micros) = stamp.trim_end_matches('Z').split_once('.').unwrap();
        // The second whose date part is theirs (formatted by the code `timestamps_are_rfc3339` checks).
        let mut secs = None;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        for s in (now - 5)..=(now + 5) {
            let mut d = Vec::new();
            push_civil_time(&mut d, s);
            if d == date.as_bytes() {
                secs = Some(s);
            }
        }
        let at = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(secs.expect("a timestamp within 5 s of now") as u64)
            + std::time::Duration::from_micros(micros.parse().unwrap());
        let mut ours = Vec::new();
        access.format(format, at, &mut ours);
        (String::from_utf8(ours).unwrap(), theirs)
    }

    #[test]
    fn access_lines_are_tracings() {
        for (device, file, addr) in [
            (Some("0011aabbcc01"), "/profile/********/p.cfg", "192.0.2.10:49152"),
            (None, "/x\"y\\z\u{e9}%0a.cfg?a=1&b=\u{1}", "[2001:db8::1]:5060"),
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let access = Access {
                protocol: "https",
                client: addr,
                device,
                method: "GET",
                file,
                status: 404,
                bytes: 17_664,
                ms: 12,
            };
            for format in [LogFormat::Text, LogFormat::Json] {
                let (ours, theirs) = both(&access, format);
                assert_eq!(ours, theirs, "{format:?}");
            }
        }
    }

    #[test]
    fn an_escape_at_every_place_of_a_word() {
        // Plain text with one character that needs an escape (or a non-ASCII one that does not) at every position,
        // for every length to 40: the eight-byte skip must stop for each, and only for those.
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', ' ', '\u{7f}', 'é', '€'] {
            for len in 0..40 {
                for at in 0..=len {
                    let s: String = (0..len).map(|i| if i == at { special } else { 'a' }).collect();
                    let mut out = Vec::new();
                    push_json_str(&mut out, &s);
                    assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap(), "{s:?}");
                }
            }
        }
        for b in 0..=255u8 {
            let word = u64::from_le_bytes([b'a', b'b', b'c', b, b'd', b'e', b'f', b'g']);
            assert_eq!(needs_escape(word), b < 0x20 || b == b'"' || b == b'\\', "{b:#x}");
        }
    }

    #[test]
    fn every_control_character() {
        let s: String = (0u8..0x80).map(char::from).collect();
        let mut out = Vec::new();
        push_json_str(&mut out, &s);
        assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
    }
}
