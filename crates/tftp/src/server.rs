//! The server side of a read transfer, as a state machine fed datagrams and `now` (no sockets, no clock).
//!
//! RFC 1350 (lock-step DATA/ACK), RFC 2347 (OACK, confirmed by ACK 0), RFC 2348/2349 (blksize, timeout, tsize),
//! RFC 7440 (windowsize: send a window, continue from the acknowledged block + 1). Retransmission happens only on
//! timeout, never on a duplicate ACK (RFC 1123 §4.2.3.1, the Sorcerer's Apprentice).
//!
//! The DATA phase is the shared [`crate::send`] machine (the client of an upload uses it too). A timeout resends one
//! block, not the window (resending whole windows sent 6-9 data packets per block delivered at 20 % loss), and
//! consecutive timeouts back off exponentially (×2 each, at most ×16).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::content::Content;
use crate::packet::{self, ErrorCode, Mode, Packet};
pub use crate::send::Stats;
use crate::send::{Acked, Expiry, Sender, Timer};

/// Server limits and defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest block size granted (clients asking for more get this; tftpd-hpa operators use 1468, MTU 1500 − 32).
    pub blksize_max: u16,
    /// Largest window granted.
    pub windowsize_max: u16,
    /// Retransmission timeout when the client does not ask for one.
    pub timeout: Duration,
    /// Retransmissions of the same packet before giving up.
    pub retries: u32,
    /// Options to ignore as if unknown (lower case), for clients that break on negotiation.
    pub refuse: Vec<String>,
    /// Longest time a transfer goes without any progress (an acknowledgement of new data) before it is dropped,
    /// whatever `timeout` the client asked for (RFC 2349 allows 255 s, so 5 retries could hold a session for
    /// 25 minutes).
    pub max_stall: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            blksize_max: 1468,
            windowsize_max: 64,
            timeout: Duration::from_secs(1),
            retries: 5,
            refuse: Vec::new(),
            max_stall: Duration::from_secs(30),
        }
    }
}

/// The outcome of option negotiation (RFC 2347).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Block size in bytes.
    pub blksize: usize,
    /// Window in blocks.
    pub windowsize: u16,
    /// Retransmission timeout.
    pub timeout: Duration,
    /// The block number after 65535: 0 (default) or 1 (`rollover=1`).
    pub rollover_to: u16,
    /// The options to put in the OACK, with the client's spelling of their names; empty: no OACK.
    pub oack: Vec<(String, String)>,
}

/// A request that is answered with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The error code.
    pub code: ErrorCode,
    /// The message.
    pub message: String,
}

fn unsupported() -> Rejection {
    Rejection { code: ErrorCode::OptionNegotiation, message: "Unsupported option(s) requested".into() }
}

/// Negotiates the options of a read request for content of `size` bytes, as tftpd-hpa does (`specs.md` §3.2).
pub fn negotiate(
    options: &[(Cow<'_, str>, Cow<'_, str>)],
    mode: Mode,
    size: u64,
    config: &ServerConfig,
) -> Result<Negotiated, Rejection> {
    let mut n = Negotiated { blksize: 512, windowsize: 1, timeout: config.timeout, rollover_to: 0, oack: Vec::new() };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in options {
        let lower = name.to_ascii_lowercase();
        if seen.contains(&lower) || config.refuse.contains(&lower) {
            continue;
        }
        seen.push(lower.clone());
        let number = || value.trim().parse::<u64>().map_err(|_| unsupported());
        let accepted = match lower.as_str() {
            "blksize" => {
                let v = number()?;
                if v < 8 {
                    return Err(unsupported());
                }
                let v = v.min(65464).min(u64::from(config.blksize_max));
                n.blksize = v as usize;
                v.to_string()
            }
            "timeout" => {
                let v = number()?;
                if !(1..=255).contains(&v) {
                    return Err(unsupported());
                }
                n.timeout = Duration::from_secs(v);
                v.to_string()
            }
            "tsize" => {
                if mode == Mode::NetAscii {
                    return Err(unsupported());
                }
                number()?;
                size.to_string()
            }
            "windowsize" => {
                let v = number()?;
                if !(1..=65535).contains(&v) {
                    return Err(unsupported());
                }
                let v = v.min(u64::from(config.windowsize_max.max(1)));
                n.windowsize = v as u16;
                v.to_string()
            }
            "rollover" => {
                let v = number()?;
                if v > 1 {
                    return Err(unsupported());
                }
                n.rollover_to = v as u16;
                v.to_string()
            }
            _ => continue,
        };
        n.oack.push((name.to_string(), accepted));
    }
    Ok(n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// OACK to be sent or sent; waiting for ACK 0.
    AwaitOackAck { sent: bool },
    /// Sending windows of DATA.
    Sending,
    /// The client acknowledged the last block.
    Done,
    /// Gave up or aborted.
    Failed,
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every block was acknowledged.
    Completed,
    /// The client sent an error.
    ClientError(u16, String),
    /// No acknowledgment after all retries.
    TimedOut,
    /// Reading the content failed.
    ReadFailed(String),
}

/// The server side of one read transfer: the OACK exchange, then the [`Sender`].
pub struct ReadTransfer {
    sender: Sender,
    timer: Timer,
    oack: Vec<(String, String)>,
    state: State,
    outcome: Option<Outcome>,
    pending_error: Option<(ErrorCode, String)>,
}

impl ReadTransfer {
    /// Starts a transfer of `content` with negotiated options. The first datagram comes from
    /// [`ReadTransfer::poll_transmit`]: an OACK if options were accepted, otherwise DATA 1.
    pub fn new(content: Arc<dyn Content>, negotiated: &Negotiated, retries: u32) -> ReadTransfer {
        let mut sender =
            Sender::new(content, negotiated.blksize, u64::from(negotiated.windowsize), negotiated.rollover_to);
        let state = if negotiated.oack.is_empty() {
            sender.start();
            State::Sending
        } else {
            State::AwaitOackAck { sent: false }
        };
        ReadTransfer {
            sender,
            timer: Timer::new(negotiated.timeout, retries, true),
            oack: negotiated.oack.clone(),
            state,
            outcome: None,
            pending_error: None,
        }
    }

    /// Drops the transfer after `limit` without progress, however long the retransmission timeout
    /// ([`ServerConfig::max_stall`]).
    pub fn with_stall_limit(mut self, limit: Duration) -> ReadTransfer {
        self.timer.stall_after(limit);
        self
    }

    /// Feeds a datagram from the client's TID.
    pub fn handle(&mut self, datagram: &[u8], now: Instant) {
        let Ok(packet) = Packet::decode(datagram) else { return };
        match (packet, self.state) {
            (Packet::Ack { block: 0 }, State::AwaitOackAck { sent: true }) => {
                self.state = State::Sending;
                self.sender.start();
                self.timer.progress(now);
                self.timer.due(now);
            }
            (Packet::Ack { block }, State::Sending) => {
                if self.sender.ack(block, now, &mut self.timer) == Acked::Completed {
                    self.finish(Outcome::Completed);
                }
            }
            (Packet::Error { code, message }, State::Sending | State::AwaitOackAck { .. }) => {
                self.finish(Outcome::ClientError(code, message.into_owned()));
            }
            _ => self.sender.ignored(),
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.state = if outcome == Outcome::Completed { State::Done } else { State::Failed };
        self.outcome = Some(outcome);
        self.timer.stop();
    }

    /// The next datagram to send, written into `out`; `false` when there is nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        self.timer.begin(now);
        if let Some((code, message)) = self.pending_error.take() {
            packet::encode_error(out, code, &message);
            return true;
        }
        match self.state {
            State::AwaitOackAck { sent: false } => {
                packet::encode_oack(out, &self.oack);
                self.state = State::AwaitOackAck { sent: true };
                self.timer.sent(now);
                true
            }
            State::Sending => match self.sender.poll_data(now, out, &mut self.timer) {
                Ok(sent) => sent,
                Err(message) => {
                    packet::encode_error(out, ErrorCode::NotDefined, "Read error");
                    self.finish(Outcome::ReadFailed(message));
                    true
                }
            },
            _ => false,
        }
    }

    /// When [`ReadTransfer::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Done | State::Failed => None,
            _ => self.timer.poll(),
        }
    }

    /// Retransmits the OACK or probes with one block if the deadline passed; gives up after the retry limit or the
    /// stall limit.
    pub fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Done | State::Failed) {
            return;
        }
        if self.state == State::Sending && self.sender.window_open() {
            // Still sending the current window (e.g. after ACK 0): not a retransmission.
            if self.timer.stalled(now) {
                self.finish(Outcome::TimedOut);
            }
            return;
        }
        match self.timer.expire(now) {
            Expiry::NotYet => {}
            Expiry::GaveUp => self.finish(Outcome::TimedOut),
            Expiry::Retry => match self.state {
                State::AwaitOackAck { .. } => self.state = State::AwaitOackAck { sent: false },
                State::Sending => self.sender.retransmit(),
                _ => {}
            },
        }
    }

    /// How the transfer ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Whether the transfer is over (completed or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.sender.stats()
    }

    /// Bytes of content.
    pub fn size(&self) -> u64 {
        self.sender.size()
    }

    /// Number of DATA blocks of the transfer.
    pub fn total_blocks(&self) -> u64 {
        self.sender.total_blocks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&'static str, &'static str)]) -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
        pairs.iter().map(|(a, b)| (Cow::Borrowed(*a), Cow::Borrowed(*b))).collect()
    }

    /// `specs.md` §3.2: tftpd-hpa's treatment of options.
    #[test]
    fn negotiation_like_tftpd_hpa() {
        let c = ServerConfig { blksize_max: 65464, ..ServerConfig::default() };
        let n = negotiate(&opts(&[("foo", "1")]), Mode::Octet, 10, &c).unwrap();
        assert!(n.oack.is_empty(), "unknown options are ignored; no OACK");
        let n = negotiate(&opts(&[("BLKSIZE", "70000"), ("TSize", "0")]), Mode::Octet, 3000, &c).unwrap();
        assert_eq!(
            n.oack,
            vec![("BLKSIZE".to_string(), "65464".to_string()), ("TSize".to_string(), "3000".to_string())]
        );
        for bad in [("timeout", "0"), ("timeout", "256"), ("blksize", "4"), ("blksize", "x"), ("windowsize", "0")] {
            let e = negotiate(&opts(&[bad]), Mode::Octet, 1, &c).unwrap_err();
            assert_eq!(e.code, ErrorCode::OptionNegotiation, "{bad:?}");
            assert_eq!(e.message, "Unsupported option(s) requested");
        }
        assert!(negotiate(&opts(&[("tsize", "0")]), Mode::NetAscii, 1, &c).is_err());
        let capped = negotiate(&opts(&[("blksize", "9000")]), Mode::Octet, 1, &ServerConfig::default()).unwrap();
        assert_eq!(capped.blksize, 1468);
        let refuse = ServerConfig { refuse: vec!["tsize".into()], ..ServerConfig::default() };
        assert!(negotiate(&opts(&[("tsize", "0")]), Mode::Octet, 1, &refuse).unwrap().oack.is_empty());
        let w = negotiate(&opts(&[("windowsize", "16"), ("rollover", "1")]), Mode::Octet, 1, &c).unwrap();
        assert_eq!((w.windowsize, w.rollover_to), (16, 1));
    }

    fn content(n: usize) -> Arc<dyn Content> {
        Arc::new((0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
    }

    fn plain(blksize: usize, windowsize: u16) -> Negotiated {
        Negotiated { blksize, windowsize, timeout: Duration::from_secs(1), rollover_to: 0, oack: Vec::new() }
    }

    fn ack(n: u16) -> Vec<u8> {
        let mut v = Vec::new();
        packet::encode_ack(&mut v, n);
        v
    }

    #[test]
    fn lock_step_and_no_sorcerers_apprentice() {
        let now = Instant::now();
        let mut t = ReadTransfer::new(content(1000), &plain(512, 1), 3);
        let mut out = Vec::new();
        assert!(t.poll_transmit(now, &mut out));
        assert_eq!(Packet::decode(&out).unwrap(), Packet::Data { block: 1, data: &content_bytes(1000)[..512] });
        assert!(!t.poll_transmit(now, &mut out), "one block in flight");
        t.handle(&ack(1), now);
        assert!(t.poll_transmit(now, &mut out));
        t.handle(&ack(1), now);
        assert!(!t.poll_transmit(now, &mut out), "a duplicate ACK sends nothing");
        assert_eq!(t.stats().ignored_acks, 1);
        t.handle(&ack(2), now);
        assert!(t.is_finished());
        assert_eq!(t.outcome(), Some(&Outcome::Completed));
    }

    fn content_bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn exact_multiple_ends_with_an_empty_block() {
        let now = Instant::now();
        let mut t = ReadTransfer::new(content(1024), &plain(512, 8), 3);
        let mut out = Vec::new();
        let mut lens = Vec::new();
        while t.poll_transmit(now, &mut out) {
            lens.push(out.len() - 4);
        }
        assert_eq!(lens, [512, 512, 0]);
        t.handle(&ack(3), now);
        assert!(t.is_finished());
    }

    #[test]
    fn timeout_resends_the_window_and_gives_up() {
        let t0 = Instant::now();
        let mut t = ReadTransfer::new(content(5000), &plain(512, 4), 2);
        let mut out = Vec::new();
        while t.poll_transmit(t0, &mut out) {}
        let d = t.poll_timeout().unwrap();
        t.handle_timeout(d);
        let mut resent = Vec::new();
        while t.poll_transmit(d, &mut out) {
            let Packet::Data { block, .. } = Packet::decode(&out).unwrap() else { panic!() };
            resent.push(block);
        }
        assert_eq!(resent, [4], "a timeout sends one probe: the last block of the window");
        t.handle(&ack(2), d);
        let mut next = Vec::new();
        while t.poll_transmit(d, &mut out) {
            let Packet::Data { block, .. } = Packet::decode(&out).unwrap() else { panic!() };
            next.push(block);
        }
        assert_eq!(next, [3, 4, 5, 6], "continues from the acknowledged block + 1");
        for _ in 0..3 {
            let d = t.poll_timeout().unwrap();
            t.handle_timeout(d);
            while t.poll_transmit(d, &mut out) {}
        }
        assert_eq!(t.outcome(), Some(&Outcome::TimedOut));
    }

    /// A client that asks for `timeout=255` and never answers is dropped after the stall limit, not 6 × 255 s.
    #[test]
    fn an_unanswered_transfer_is_dropped_at_the_stall_limit() {
        let t0 = Instant::now();
        let n = Negotiated { timeout: Duration::from_secs(255), ..plain(512, 1) };
        let mut t = ReadTransfer::new(content(5000), &n, 5).with_stall_limit(Duration::from_secs(30));
        let mut out = Vec::new();
        assert!(t.poll_transmit(t0, &mut out));
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        t.handle_timeout(t0 + Duration::from_secs(29));
        assert!(!t.is_finished());
        t.handle_timeout(t0 + Duration::from_secs(30));
        assert_eq!(t.outcome(), Some(&Outcome::TimedOut));
        // Progress moves the limit.
        let mut t = ReadTransfer::new(content(5000), &plain(512, 1), 50).with_stall_limit(Duration::from_secs(3));
        assert!(t.poll_transmit(t0, &mut out));
        t.handle(&ack(1), t0 + Duration::from_secs(2));
        t.handle_timeout(t0 + Duration::from_secs(4));
        assert!(!t.is_finished());
        assert!(t.poll_transmit(t0 + Duration::from_secs(4), &mut out));
        t.handle_timeout(t0 + Duration::from_secs(5));
        assert_eq!(t.outcome(), Some(&Outcome::TimedOut));
    }

    /// Per timeout, at most the unacknowledged part of the window goes out again: here one block, whatever the
    /// window size; lock-step transfers resend their one block.
    #[test]
    fn a_timeout_never_resends_more_than_one_block() {
        let t0 = Instant::now();
        for window in [1u16, 4, 16, 64] {
            let mut t = ReadTransfer::new(content(200_000), &plain(512, window), 50);
            let mut out = Vec::new();
            let mut now = t0;
            while t.poll_transmit(now, &mut out) {}
            for _ in 0..5 {
                now = t.poll_timeout().unwrap();
                t.handle_timeout(now);
                let mut sent = 0;
                while t.poll_transmit(now, &mut out) {
                    sent += 1;
                    let Packet::Data { block, .. } = Packet::decode(&out).unwrap() else { panic!() };
                    assert_eq!(u64::from(block), u64::from(window), "window {window}: the last block sent");
                }
                assert_eq!(sent, 1, "window {window}");
            }
            // The client's ACK (here: it had the first half) resumes with a full window from there.
            let half = (window / 2).max(1);
            t.handle(&ack(half), now);
            let mut next = Vec::new();
            while t.poll_transmit(now, &mut out) {
                let Packet::Data { block, .. } = Packet::decode(&out).unwrap() else { panic!() };
                next.push(block);
            }
            assert_eq!(next, (half + 1..=half + window).collect::<Vec<_>>(), "window {window}");
        }
    }

    #[test]
    fn rollover_wire_numbers() {
        let n = Negotiated { rollover_to: 0, ..plain(512, 1) };
        let t = ReadTransfer::new(content(10), &n, 1);
        assert_eq!((t.sender.wire(65535), t.sender.wire(65536), t.sender.wire(65537)), (65535, 0, 1));
        let n = Negotiated { rollover_to: 1, ..plain(512, 1) };
        let t = ReadTransfer::new(content(10), &n, 1);
        assert_eq!((t.sender.wire(65535), t.sender.wire(65536), t.sender.wire(65537)), (65535, 1, 2));
    }
}
