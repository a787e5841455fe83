//! The server side of a write transfer (WRQ), for phones that upload logs: off unless an upload directory is
//! configured, and capped in size.
//!
//! RFC 1350: the server answers a WRQ with ACK 0 (or, with options, an OACK that the client's DATA 1 confirms,
//! RFC 2347), then acknowledges DATA; RFC 2349 `tsize` announces the upload's size, refused with ERROR 3 when it is
//! over the limit; RFC 7440 windows apply to the receiver's ACKs.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use crate::packet::{self, ErrorCode, Mode, Packet};
use crate::receive::{Received, Receiver};
use crate::server::{Negotiated, Rejection, ServerConfig, negotiate};

/// Negotiates a write request's options; an announced `tsize` over `limit` is refused with ERROR 3.
pub fn negotiate_write(
    options: &[(Cow<'_, str>, Cow<'_, str>)],
    mode: Mode,
    limit: u64,
    config: &ServerConfig,
) -> Result<Negotiated, Rejection> {
    let mut tsize: Option<(String, u64)> = None;
    let mut rest = Vec::new();
    for (name, value) in options {
        if name.eq_ignore_ascii_case("tsize") && !config.refuse.contains(&"tsize".to_string()) {
            if tsize.is_none() {
                let v = value.trim().parse::<u64>().map_err(|_| Rejection {
                    code: ErrorCode::OptionNegotiation,
                    message: "Unsupported option(s) requested".into(),
                })?;
                tsize = Some((name.to_string(), v));
            }
        } else if !name.eq_ignore_ascii_case("rollover") {
            rest.push((name.clone(), value.clone()));
        }
    }
    if let Some((_, size)) = &tsize
        && *size > limit
    {
        return Err(Rejection { code: ErrorCode::DiskFull, message: format!("File too large (limit {limit} bytes)") });
    }
    let mut n = negotiate(&rest, mode, 0, config)?;
    if let Some((name, size)) = tsize {
        n.oack.push((name, size.to_string()));
    }
    Ok(n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// ACK 0 or OACK to be sent (again); waiting for DATA 1.
    Start {
        sent: bool,
    },
    Receiving,
    Done,
    Failed,
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Every block arrived.
    Completed,
    /// The client sent an error.
    ClientError(u16, String),
    /// The upload exceeded the size limit (ERROR 3 sent).
    TooLarge,
    /// The client sent a block larger than the block size (ERROR 4 sent).
    Oversized,
    /// No DATA after all retries.
    TimedOut,
}

/// The server side of one upload.
pub struct WriteTransfer {
    rx: Receiver,
    oack: Vec<(String, String)>,
    state: State,
    timeout: Duration,
    max_retries: u32,
    retries: u32,
    deadline: Option<Instant>,
    /// When the upload started or last received new data, and how long it may go without.
    last_progress: Option<Instant>,
    stall_limit: Option<Duration>,
    pending_ack: Option<u64>,
    last_acked: u64,
    pending_error: Option<(ErrorCode, String)>,
    outcome: Option<UploadOutcome>,
}

impl WriteTransfer {
    /// Starts an upload with negotiated options, at most `limit` bytes.
    pub fn new(negotiated: &Negotiated, mode: Mode, limit: u64, retries: u32) -> WriteTransfer {
        let mut rx = Receiver::new(mode == Mode::NetAscii, Some(limit));
        rx.blksize = negotiated.blksize;
        rx.windowsize = u64::from(negotiated.windowsize.max(1));
        WriteTransfer {
            rx,
            oack: negotiated.oack.clone(),
            state: State::Start { sent: false },
            timeout: negotiated.timeout,
            max_retries: retries,
            retries: 0,
            deadline: None,
            last_progress: None,
            stall_limit: None,
            pending_ack: None,
            last_acked: 0,
            pending_error: None,
            outcome: None,
        }
    }

    /// Drops the upload after `limit` without new data, however long the retransmission timeout.
    pub fn with_stall_limit(mut self, limit: Duration) -> WriteTransfer {
        self.stall_limit = Some(limit);
        self
    }

    fn stall_deadline(&self) -> Option<Instant> {
        Some(self.last_progress? + self.stall_limit?)
    }

    fn finish(&mut self, outcome: UploadOutcome) {
        self.state = if outcome == UploadOutcome::Completed { State::Done } else { State::Failed };
        self.outcome = Some(outcome);
        self.deadline = None;
    }

    /// Feeds a datagram from the client's TID.
    pub fn handle(&mut self, datagram: &[u8], now: Instant) {
        let Ok(packet) = Packet::decode(datagram) else { return };
        match (packet, self.state) {
            (Packet::Data { block, data }, State::Start { sent: true } | State::Receiving) => {
                self.state = State::Receiving;
                let before = self.rx.expected;
                match self.rx.block(block, data) {
                    Received::Nothing => {}
                    Received::Ack(n) => self.pending_ack = Some(n),
                    Received::Last(n) => {
                        self.pending_ack = Some(n);
                        self.finish(UploadOutcome::Completed);
                    }
                    Received::TooLarge => {
                        self.pending_error = Some((ErrorCode::DiskFull, "Disk full or allocation exceeded".into()));
                        self.finish(UploadOutcome::TooLarge);
                    }
                    Received::Oversized => {
                        self.pending_error = Some((ErrorCode::IllegalOperation, "Block larger than blksize".into()));
                        self.finish(UploadOutcome::Oversized);
                    }
                }
                if self.rx.expected > before && !matches!(self.state, State::Done | State::Failed) {
                    self.retries = 0;
                    self.last_progress = Some(now);
                    self.deadline = Some(now + self.timeout);
                }
            }
            (Packet::Data { block, .. }, State::Done) if block == self.rx.wire(self.rx.last_in_order()) => {
                // The final ACK was lost and the client sent its last block again.
                self.pending_ack = Some(self.rx.last_in_order());
            }
            (Packet::Error { code, message }, State::Start { .. } | State::Receiving) => {
                self.finish(UploadOutcome::ClientError(code, message.into_owned()));
            }
            _ => {}
        }
    }

    /// The next datagram to send into `out`; `false` when there is none.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        self.last_progress.get_or_insert(now);
        if let Some((code, message)) = self.pending_error.take() {
            packet::encode_error(out, code, &message);
            return true;
        }
        if let State::Start { sent: false } = self.state {
            if self.oack.is_empty() {
                packet::encode_ack(out, 0);
            } else {
                packet::encode_oack(out, &self.oack);
            }
            self.state = State::Start { sent: true };
            self.deadline = Some(now + self.timeout);
            return true;
        }
        match self.pending_ack.take() {
            Some(n) => {
                packet::encode_ack(out, self.rx.wire(n));
                self.last_acked = n;
                if self.state == State::Receiving {
                    self.deadline = Some(now + self.timeout);
                }
                true
            }
            None => false,
        }
    }

    /// When [`WriteTransfer::handle_timeout`] should be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.deadline, self.stall_deadline()) {
            (Some(d), Some(s)) if !matches!(self.state, State::Done | State::Failed) => Some(d.min(s)),
            (d, _) => d,
        }
    }

    /// Resends the ACK 0 / OACK or the last ACK; gives up after the retry limit.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !matches!(self.state, State::Done | State::Failed) && self.stall_deadline().is_some_and(|s| now >= s) {
            self.finish(UploadOutcome::TimedOut);
            return;
        }
        match self.deadline {
            Some(d) if now >= d => {}
            _ => return,
        }
        self.retries += 1;
        if self.retries > self.max_retries {
            self.finish(UploadOutcome::TimedOut);
            return;
        }
        match self.state {
            State::Start { .. } => self.state = State::Start { sent: false },
            State::Receiving if self.pending_ack.is_none() => self.pending_ack = Some(self.last_acked),
            _ => {}
        }
    }

    /// Whether the upload is over and nothing is left to send.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed) && self.pending_ack.is_none() && self.pending_error.is_none()
    }

    /// How it ended.
    pub fn outcome(&self) -> Option<&UploadOutcome> {
        self.outcome.as_ref()
    }

    /// The uploaded bytes (complete once the outcome is `Completed`).
    pub fn data(&self) -> &[u8] {
        &self.rx.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(block: u16, len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        packet::encode_data(&mut v, block, &vec![b'x'; len]);
        v
    }

    fn sent(t: &mut WriteTransfer, now: Instant) -> Vec<Packet<'static>> {
        let mut out = Vec::new();
        let mut v = Vec::new();
        while t.poll_transmit(now, &mut out) {
            v.push(match Packet::decode(&out).unwrap() {
                Packet::Ack { block } => Packet::Ack { block },
                Packet::Error { code, message } => Packet::Error { code, message: message.into_owned().into() },
                Packet::Oack { .. } => Packet::Oack { options: vec![] },
                _ => panic!(),
            });
        }
        v
    }

    fn plain() -> Negotiated {
        negotiate_write(&[], Mode::Octet, 1 << 20, &ServerConfig::default()).unwrap()
    }

    #[test]
    fn lock_step_upload() {
        let now = Instant::now();
        let mut t = WriteTransfer::new(&plain(), Mode::Octet, 10_000, 3);
        assert_eq!(sent(&mut t, now), [Packet::Ack { block: 0 }]);
        t.handle(&data(1, 512), now);
        assert_eq!(sent(&mut t, now), [Packet::Ack { block: 1 }]);
        t.handle(&data(1, 512), now);
        assert_eq!(sent(&mut t, now), [Packet::Ack { block: 1 }], "a duplicate is acknowledged again");
        t.handle(&data(2, 10), now);
        assert_eq!(sent(&mut t, now), [Packet::Ack { block: 2 }]);
        assert!(t.is_finished());
        assert_eq!(t.outcome(), Some(&UploadOutcome::Completed));
        assert_eq!(t.data().len(), 522);
    }

    #[test]
    fn options_size_limit_and_timeouts() {
        let opts = vec![(Cow::from("tsize"), Cow::from("2000000")), (Cow::from("blksize"), Cow::from("1024"))];
        let e = negotiate_write(&opts, Mode::Octet, 1 << 20, &ServerConfig::default()).unwrap_err();
        assert_eq!(e.code, ErrorCode::DiskFull);
        let opts = vec![(Cow::from("tsize"), Cow::from("2000")), (Cow::from("blksize"), Cow::from("1024"))];
        let n = negotiate_write(&opts, Mode::Octet, 1 << 20, &ServerConfig::default()).unwrap();
        assert_eq!(
            n.oack,
            vec![("blksize".to_string(), "1024".to_string()), ("tsize".to_string(), "2000".to_string())]
        );
        let now = Instant::now();
        let mut t = WriteTransfer::new(&plain(), Mode::Octet, 1000, 2);
        sent(&mut t, now);
        t.handle(&data(1, 512), now);
        sent(&mut t, now);
        t.handle(&data(2, 512), now);
        let v = sent(&mut t, now);
        assert!(matches!(v[0], Packet::Error { code: 3, .. }), "{v:?}");
        assert_eq!(t.outcome(), Some(&UploadOutcome::TooLarge));
        let mut t = WriteTransfer::new(&plain(), Mode::Octet, 1000, 2);
        sent(&mut t, now);
        for i in 1..=3 {
            let d = t.poll_timeout().unwrap();
            t.handle_timeout(d);
            if i < 3 {
                assert_eq!(sent(&mut t, d), [Packet::Ack { block: 0 }]);
            }
        }
        assert_eq!(t.outcome(), Some(&UploadOutcome::TimedOut));
    }
}
