//! The socket loops: one async loop ([`drive`]) runs every transfer machine — the server's reads and uploads
//! ([`crate::service`]) and the client's downloads and uploads ([`crate::fetch`]) — sending what the machine has, then
//! waiting for the peer's datagram or the machine's deadline. [`drive_blocking`] is the same loop on a blocking
//! socket, for a lock-step transfer that has a thread to itself (the service uses it while nearly idle: for lock-step
//! transfers a wake-up through the async reactor costs more than the client's reply takes).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::Machine;
use crate::packet::{self, ErrorCode};

/// Who the transfer is with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Peer {
    /// The peer's transfer ID is known (the server side: the client's address).
    Known(SocketAddr),
    /// The request goes to this listening address; the first answer from its host fixes the peer's transfer ID (the
    /// client side, RFC 1350 §4).
    Learn(SocketAddr),
}

/// Runs `t` on `socket` to its end. Datagrams from any address but the peer's get ERROR 5 and do not disturb the
/// transfer (RFC 1350 §4). `largest` is the largest datagram the peer legitimately sends; `heard` is set at the
/// first datagram from the peer; `after_send` sees the machine after each round of sends (a download drains its
/// data there).
pub(crate) async fn drive<T: Machine>(
    socket: &UdpSocket,
    peer: Peer,
    t: &mut T,
    out: &mut Vec<u8>,
    largest: usize,
    heard: Option<&AtomicBool>,
    mut after_send: impl FnMut(&mut T),
) -> io::Result<()> {
    // Plus one byte, so an oversized datagram is noticed rather than silently cut to size: memory per transfer stays
    // small.
    let mut buf = vec![0u8; largest + 1];
    let (mut known, target) = match peer {
        Peer::Known(a) => (Some(a), a),
        Peer::Learn(a) => (None, a),
    };
    // One timer for the whole transfer, moved rather than re-created on every packet.
    let sleep = tokio::time::sleep(std::time::Duration::from_secs(3600));
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        let now = Instant::now();
        while t.poll_transmit(now, out) {
            // Until the peer answers, datagrams go to the listening address; then to the peer's transfer ID.
            socket.send_to(out, known.unwrap_or(target)).await?;
            out.clear();
        }
        after_send(t);
        if t.is_finished() {
            return Ok(());
        }
        let Some(deadline) = t.poll_timeout() else { return Ok(()) };
        if armed != Some(deadline) {
            sleep.as_mut().reset(deadline.into());
            armed = Some(deadline);
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (len, from) = match r {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                    Err(e) => return Err(e),
                };
                match known {
                    Some(p) if p == from => {}
                    None if from.ip() == target.ip() || target.ip().is_unspecified() => known = Some(from),
                    _ => {
                        let mut err = Vec::new();
                        packet::encode_error(&mut err, ErrorCode::UnknownTransferId, "Unknown transfer ID");
                        let _ = socket.send_to(&err, from).await;
                        continue;
                    }
                }
                if let Some(h) = heard {
                    h.store(true, Ordering::Release);
                }
                t.handle(&buf[..len], Instant::now());
            }
            _ = &mut sleep => {
                // A completed timer stays ready: re-arm it on the next turn even if the deadline did not move.
                armed = None;
                t.handle_timeout(Instant::now());
            }
        }
    }
}

/// [`drive`] with blocking socket calls, for a transfer that has a thread to itself.
pub(crate) fn drive_blocking(
    socket: &std::net::UdpSocket,
    client: SocketAddr,
    t: &mut impl Machine,
    timeout: std::time::Duration,
    out: &mut Vec<u8>,
    largest: usize,
    heard: &AtomicBool,
) -> io::Result<()> {
    let mut buf = vec![0u8; largest + 1];
    // The read timeout now on the socket. Waits go on a 5 ms grid, rounded down, so in lock-step (where every
    // block moves the deadline by a few microseconds) the option is set once, not once per block. Waking up to
    // 5 ms early is harmless: the machine's timers fire only at their deadline.
    let mut armed = None;
    let grid = std::time::Duration::from_millis(5);
    loop {
        let now = Instant::now();
        while t.poll_transmit(now, out) {
            socket.send_to(out, client)?;
        }
        if t.is_finished() {
            return Ok(());
        }
        let Some(deadline) = t.poll_timeout() else { return Ok(()) };
        let wait = deadline.saturating_duration_since(Instant::now()).min(timeout * 2);
        let wait = match u32::try_from(wait.as_millis() / 5) {
            Ok(steps) if steps > 0 => grid * steps,
            _ => wait.max(std::time::Duration::from_millis(1)),
        };
        if armed != Some(wait) {
            socket.set_read_timeout(Some(wait))?;
            armed = Some(wait);
        }
        match socket.recv_from(&mut buf) {
            Ok((len, from)) if from == client => {
                heard.store(true, Ordering::Release);
                t.handle(&buf[..len], Instant::now());
            }
            Ok((_, from)) => {
                let mut err = Vec::new();
                packet::encode_error(&mut err, ErrorCode::UnknownTransferId, "Unknown transfer ID");
                let _ = socket.send_to(&err, from);
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                t.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
