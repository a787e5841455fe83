//! The syslog receiver: UDP datagrams in RFC 3164 or RFC 5424 form (syslog_loose), such as the `Log_Request_Msg`,
//! `Log_Success_Msg` and `Log_Failure_Msg` lines phones send (specs.md §4.1: `$PN $MAC -- Resync failed: $ERR`).
//!
//! A line is attributed to a device by a MAC in its host name (`SEP001122334455`) or text (`00:0e:08:aa:bb:cc`,
//! `000e08aabbcc`), else by the address the device last fetched a file from.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

use crate::inventory::{Mac, Store};
use crate::journal::Journal;
use crate::provision::Provisioner;

/// The first MAC address in `text`: 12 hex digits, or six colon- or dash-separated pairs.
pub fn find_mac(text: &str) -> Option<Mac> {
    let b = text.as_bytes();
    let hex = |c: u8| c.is_ascii_hexdigit();
    for i in 0..b.len() {
        if i > 0 && (hex(b[i - 1]) || b[i - 1] == b':') {
            continue;
        }
        if b.len() >= i + 17 && (b[i + 2] == b':' || b[i + 2] == b'-') {
            let sep = b[i + 2];
            let w = &b[i..i + 17];
            let shape = w.iter().enumerate().all(|(j, &c)| if j % 3 == 2 { c == sep } else { hex(c) });
            if shape && b.get(i + 17).is_none_or(|&c| !hex(c) && c != sep) {
                return text[i..i + 17].parse().ok();
            }
        }
        if b.len() >= i + 12 && b[i..i + 12].iter().all(|&c| hex(c)) && b.get(i + 12).is_none_or(|&c| !hex(c)) {
            return text[i..i + 12].parse().ok();
        }
    }
    None
}

/// Receives syslog datagrams on `socket` until `shutdown`.
pub async fn serve<S: Store + 'static, J: Journal>(
    socket: UdpSocket,
    provisioner: Arc<Provisioner<S, J>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut buf = vec![0u8; 8192];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            () = shutdown.cancelled() => return,
        };
        let Ok((n, from)) = received else { continue };
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        receive(&provisioner, from, &line, std::time::SystemTime::now()).await;
    }
}

/// Handles one syslog line that arrived at `now`.
pub async fn receive<S: Store + 'static, J: Journal>(
    provisioner: &Provisioner<S, J>,
    from: SocketAddr,
    line: &str,
    now: std::time::SystemTime,
) {
    let msg = syslog_loose::parse_message(line.trim_end(), syslog_loose::Variant::Either);
    // The parser may take the first pair of a colon-separated MAC for a tag (`CP-8841-3PCC 00:0e:...`): the whole
    // line is searched too before falling back to the sender's address.
    let device = msg
        .hostname
        .and_then(find_mac)
        .or_else(|| find_mac(msg.msg))
        .or_else(|| find_mac(line))
        .or_else(|| provisioner.device_at(from.ip()));
    let text = match msg.severity {
        Some(s) => format!("{}: {}", s.as_str(), msg.msg),
        None => msg.msg.to_string(),
    };
    metrics::counter!("provisor_syslog_lines_total").increment(1);
    if device.is_none() {
        tracing::info!("syslog from {from} (no device): {text}");
    }
    provisioner.record_event(from, device, "syslog", text, now).await;
}

#[cfg(test)]
mod tests {
    use super::find_mac;

    #[test]
    fn macs_in_lines() {
        let m = |s: &str| find_mac(s).map(|m| m.to_string());
        assert_eq!(
            m("CP-8841-3PCC 00:0e:08:aa:bb:cc -- Resync failed: http_get failed").as_deref(),
            Some("000e08aabbcc")
        );
        assert_eq!(m("SEP000E08AABBCC").as_deref(), Some("000e08aabbcc"));
        assert_eq!(m("mac=000e08aabbcc,").as_deref(), Some("000e08aabbcc"));
        assert_eq!(m("id 1000e08aabbcc"), None);
        assert_eq!(m("no mac here"), None);
    }
}
