//! The socket loops: one async loop ([`drive`]) runs every transfer machine — the server's reads and uploads
//! ([`crate::service`]) and the client's downloads and uploads ([`crate::fetch`]) — sending what the machine has, then
//! waiting for the peer's datagram or the machine's deadline. [`drive_blocking`] is the same loop on a blocking
//! socket, for a lock-step transfer that has a thread to itself (the service uses it while nearly idle: for lock-step
//! transfers a wake-up through the async reactor costs more than the client's reply takes).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// Polling for a near peer's reply instead of sleeping until it comes.
///
/// In lock-step every block waits for the peer's ACK. A blocking receive puts the thread to sleep and the ACK has
/// to wake it: on a virtual machine that wake-up costs about as much as a peer on the same host takes to answer.
/// While the peer's replies keep coming within [`ReplyPoll::NEAR`], and `alone` says no other transfer is running
/// (so no other work needs the core), the thread polls the socket for up to [`ReplyPoll::BUDGET`] before it blocks.
/// A phone on a LAN takes a millisecond or more to answer and never turns polling on; neither does a busy server.
struct ReplyPoll {
    /// The mean time from the last datagram sent to the peer's reply (an exponentially weighted mean, 1/8).
    mean: Duration,
    /// Whether the socket is in non-blocking mode now.
    nonblocking: bool,
}

impl ReplyPoll {
    /// Replies slower than this on average: the peer is not near; block at once.
    const NEAR: Duration = Duration::from_micros(300);
    /// The longest poll before blocking.
    const BUDGET: Duration = Duration::from_micros(200);

    fn new() -> ReplyPoll {
        ReplyPoll { mean: Self::NEAR, nonblocking: false }
    }

    fn near(&self) -> bool {
        self.mean < Self::NEAR
    }

    fn replied(&mut self, after: Duration) {
        self.mean = (self.mean * 7 + after.min(Self::NEAR * 4)) / 8;
    }

    /// Receives by polling until `until`; `None` when nothing came (the socket is left in blocking mode then).
    fn poll(
        &mut self,
        socket: &std::net::UdpSocket,
        buf: &mut [u8],
        until: Instant,
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        if !self.nonblocking {
            socket.set_nonblocking(true)?;
            self.nonblocking = true;
        }
        loop {
            match socket.recv_from(buf) {
                Ok(r) => return Ok(Some(r)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= until {
                self.block(socket)?;
                return Ok(None);
            }
            std::hint::spin_loop();
        }
    }

    /// Puts the socket back in blocking mode if a poll left it non-blocking.
    fn block(&mut self, socket: &std::net::UdpSocket) -> io::Result<()> {
        if self.nonblocking {
            socket.set_nonblocking(false)?;
            self.nonblocking = false;
        }
        Ok(())
    }
}

/// [`drive`] with blocking socket calls, for a transfer that has a thread to itself. `alone` says whether no other
/// transfer is running (see [`ReplyPoll`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn drive_blocking(
    socket: &std::net::UdpSocket,
    client: SocketAddr,
    t: &mut impl Machine,
    timeout: Duration,
    out: &mut Vec<u8>,
    largest: usize,
    heard: &AtomicBool,
    alone: impl Fn() -> bool,
) -> io::Result<()> {
    let mut buf = vec![0u8; largest + 1];
    // The read timeout now on the socket. Waits go on a 5 ms grid, rounded down, so in lock-step (where every
    // block moves the deadline by a few microseconds) the option is set once, not once per block. Waking up to
    // 5 ms early is harmless: the machine's timers fire only at their deadline.
    let mut armed = None;
    let grid = Duration::from_millis(5);
    let mut reply = ReplyPoll::new();
    loop {
        let now = Instant::now();
        while t.poll_transmit(now, out) {
            match socket.send_to(out, client) {
                // A full send buffer while the socket polls (a large window): wait for room as a blocking send.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    reply.block(socket)?;
                    socket.send_to(out, client)?;
                }
                r => {
                    r?;
                }
            }
        }
        if t.is_finished() {
            return Ok(());
        }
        let Some(deadline) = t.poll_timeout() else { return Ok(()) };
        let sent = Instant::now();
        let polled = if reply.near() && alone() {
            reply.poll(socket, &mut buf, (sent + ReplyPoll::BUDGET).min(deadline))?
        } else {
            None
        };
        let received = match polled {
            Some(r) => Ok(r),
            None => {
                reply.block(socket)?;
                let wait = deadline.saturating_duration_since(Instant::now()).min(timeout * 2);
                let wait = match u32::try_from(wait.as_millis() / 5) {
                    Ok(steps) if steps > 0 => grid * steps,
                    _ => wait.max(Duration::from_millis(1)),
                };
                if armed != Some(wait) {
                    socket.set_read_timeout(Some(wait))?;
                    armed = Some(wait);
                }
                socket.recv_from(&mut buf)
            }
        };
        match received {
            Ok((len, from)) if from == client => {
                heard.store(true, Ordering::Release);
                let now = Instant::now();
                reply.replied(now.saturating_duration_since(sent));
                t.handle(&buf[..len], now);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_turns_on_only_for_a_peer_that_keeps_answering_fast() {
        let mut reply = ReplyPoll::new();
        assert!(!reply.near(), "a new transfer blocks until the peer has shown how fast it answers");
        for _ in 0..8 {
            reply.replied(Duration::from_micros(80));
        }
        assert!(reply.near(), "a peer on the same host");
        // A phone on a LAN: a millisecond or more per reply turns it off within a few blocks.
        for _ in 0..4 {
            reply.replied(Duration::from_millis(2));
        }
        assert!(!reply.near());
        // One slow reply (a lost ACK resent after seconds) weighs no more than four times NEAR.
        let mut reply = ReplyPoll::new();
        for _ in 0..16 {
            reply.replied(Duration::from_micros(50));
        }
        reply.replied(Duration::from_secs(2));
        for _ in 0..8 {
            reply.replied(Duration::from_micros(50));
        }
        assert!(reply.near(), "back to polling soon after one slow reply");
    }

    #[test]
    fn a_poll_that_gets_nothing_leaves_the_socket_blocking_and_one_that_gets_a_datagram_returns_it() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut reply = ReplyPoll::new();
        let mut buf = [0u8; 16];
        let got = reply.poll(&socket, &mut buf, Instant::now() + Duration::from_micros(100)).unwrap();
        assert!(got.is_none());
        assert!(!reply.nonblocking);
        // Blocking again: a read with a timeout waits rather than failing at once.
        socket.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let t = Instant::now();
        assert!(socket.recv_from(&mut buf).is_err());
        assert!(t.elapsed() >= Duration::from_millis(25), "the socket was left non-blocking");
        peer.send_to(b"ack", socket.local_addr().unwrap()).unwrap();
        let got = reply.poll(&socket, &mut buf, Instant::now() + Duration::from_millis(500)).unwrap();
        assert_eq!(got, Some((3, peer.local_addr().unwrap())));
        assert_eq!(&buf[..3], b"ack");
    }
}
