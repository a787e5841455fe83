//! The client side of a read transfer ([`ReadClient`], on the shared receiving half) and of an upload
//! ([`WriteClient`], on the shared sending half, [`crate::send`]), as state machines fed datagrams and `now`.
//!
//! Asks for `blksize`, `tsize`, `timeout` and `windowsize` as configured; accepts an OACK only with values it can
//! use (RFC 2347: never more than asked), answering ERROR 8 otherwise; ACKs every window's last block, or the last
//! in-order block when a gap appears (RFC 7440 §4); re-ACKs a duplicate block (its ACK was lost); follows the
//! server's block-number rollover to 0 or to 1.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::packet::{self, ErrorCode, Mode, Packet};
use crate::receive::{Received, Receiver};
use crate::send::{Acked, Expiry, Sender, Timer};

/// What to ask for.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Transfer mode.
    pub mode: Mode,
    /// `blksize` to ask for (none: 512, no option).
    pub blksize: Option<u16>,
    /// `windowsize` to ask for.
    pub windowsize: Option<u16>,
    /// `timeout` to ask for, in seconds (also used locally).
    pub timeout: Option<u8>,
    /// Ask for `tsize`.
    pub tsize: bool,
    /// Local retransmission timeout when no `timeout` is negotiated.
    pub retransmit: Duration,
    /// Retransmissions before giving up.
    pub retries: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            mode: Mode::Octet,
            blksize: None,
            windowsize: None,
            timeout: None,
            tsize: true,
            retransmit: Duration::from_secs(1),
            retries: 5,
        }
    }
}

/// Why a download failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server sent an error.
    #[error("server error {code}: {message}")]
    Server {
        /// The code.
        code: u16,
        /// The message.
        message: String,
    },
    /// The server's OACK was unusable.
    #[error("option negotiation failed: {0}")]
    Negotiation(String),
    /// No answer after all retries.
    #[error("timed out")]
    TimedOut,
}

/// What a server's OACK accepted, checked against what was asked (RFC 2347: never more than asked, nothing
/// unasked).
#[derive(Debug, Default)]
struct Accepted {
    blksize: Option<usize>,
    windowsize: Option<u64>,
    timeout: Option<Duration>,
    tsize: Option<u64>,
}

fn accept_oack(
    options: &[(Cow<'_, str>, Cow<'_, str>)],
    blksize: Option<u16>,
    windowsize: Option<u16>,
) -> Result<Accepted, String> {
    let mut a = Accepted::default();
    for (name, value) in options {
        let v: u64 = value.trim().parse().map_err(|_| format!("{name}={value} is not a number"))?;
        match name.to_ascii_lowercase().as_str() {
            "blksize" => {
                let asked = u64::from(blksize.ok_or("blksize was not requested")?);
                if !(8..=asked).contains(&v) {
                    return Err(format!("blksize {v} is outside 8..={asked}"));
                }
                a.blksize = Some(v as usize);
            }
            "windowsize" => {
                let asked = u64::from(windowsize.ok_or("windowsize was not requested")?);
                if !(1..=asked).contains(&v) {
                    return Err(format!("windowsize {v} is outside 1..={asked}"));
                }
                a.windowsize = Some(v);
            }
            "timeout" if (1..=255).contains(&v) => a.timeout = Some(Duration::from_secs(v)),
            "timeout" => return Err(format!("timeout {v} is outside 1..=255")),
            "tsize" => a.tsize = Some(v),
            other => return Err(format!("the server acknowledged {other}, which was not requested")),
        }
    }
    Ok(a)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Requesting { sent: bool },
    Receiving,
    Done,
    Failed,
}

/// The client side of one download.
pub struct ReadClient {
    config: ClientConfig,
    filename: String,
    state: State,
    rx: Receiver,
    timeout: Duration,
    pending_ack: Option<u64>,
    last_acked: u64,
    pending_error: Option<(ErrorCode, String)>,
    deadline: Option<Instant>,
    retries: u32,
    tsize: Option<u64>,
    error: Option<ClientError>,
}

impl ReadClient {
    /// A download of `filename`.
    pub fn new(filename: &str, config: ClientConfig) -> ReadClient {
        let timeout = config.timeout.map_or(config.retransmit, |t| Duration::from_secs(u64::from(t)));
        ReadClient {
            filename: filename.to_string(),
            state: State::Requesting { sent: false },
            rx: Receiver::new(config.mode == Mode::NetAscii, None),
            timeout,
            pending_ack: None,
            last_acked: 0,
            pending_error: None,
            deadline: None,
            retries: 0,
            tsize: None,
            error: None,
            config,
        }
    }

    fn request(&self, out: &mut Vec<u8>) {
        let mut options: Vec<(&str, String)> = Vec::new();
        if self.config.tsize && self.config.mode != Mode::NetAscii {
            options.push(("tsize", "0".into()));
        }
        if let Some(b) = self.config.blksize {
            options.push(("blksize", b.to_string()));
        }
        if let Some(t) = self.config.timeout {
            options.push(("timeout", t.to_string()));
        }
        if let Some(w) = self.config.windowsize {
            options.push(("windowsize", w.to_string()));
        }
        packet::encode_request(out, false, &self.filename, self.config.mode.as_str(), &options);
    }

    fn fail(&mut self, e: ClientError) {
        self.error = Some(e);
        self.state = State::Failed;
        self.deadline = None;
    }

    fn negotiate(&mut self, options: &[(Cow<'_, str>, Cow<'_, str>)]) -> Result<(), String> {
        let a = accept_oack(options, self.config.blksize, self.config.windowsize)?;
        if let Some(b) = a.blksize {
            self.rx.blksize = b;
        }
        if let Some(w) = a.windowsize {
            self.rx.windowsize = w;
        }
        if let Some(t) = a.timeout {
            self.timeout = t;
        }
        self.tsize = a.tsize;
        Ok(())
    }

    /// Feeds a datagram from the server's TID.
    pub fn handle(&mut self, datagram: &[u8], now: Instant) {
        let Ok(packet) = Packet::decode(datagram) else { return };
        match (packet, self.state) {
            (Packet::Oack { options }, State::Requesting { .. }) => {
                if let Err(message) = self.negotiate(&options) {
                    self.pending_error = Some((ErrorCode::OptionNegotiation, message.clone()));
                    self.fail(ClientError::Negotiation(message));
                    return;
                }
                self.state = State::Receiving;
                self.retries = 0;
                self.pending_ack = Some(0);
            }
            (Packet::Data { block, data }, State::Requesting { .. } | State::Receiving) => {
                if matches!(self.state, State::Requesting { .. }) {
                    // No OACK: the server ignored every option; RFC 1350 defaults apply.
                    self.state = State::Receiving;
                }
                self.data_block(block, data, now);
            }
            (Packet::Data { block, .. }, State::Done) if block == self.rx.wire(self.rx.last_in_order()) => {
                // The server did not get our final ACK and sent the last block again: acknowledge it again.
                self.pending_ack = Some(self.rx.last_in_order());
            }
            (Packet::Error { code, message }, State::Requesting { .. } | State::Receiving) => {
                self.fail(ClientError::Server { code, message: message.into_owned() });
            }
            _ => {}
        }
    }

    fn data_block(&mut self, block: u16, data: &[u8], now: Instant) {
        let before = self.rx.expected;
        match self.rx.block(block, data) {
            Received::Nothing => {}
            Received::Ack(n) => self.pending_ack = Some(n),
            Received::Last(n) => {
                self.pending_ack = Some(n);
                self.state = State::Done;
            }
            Received::Oversized => {
                self.pending_error = Some((ErrorCode::IllegalOperation, "block larger than blksize".into()));
                let message = format!("block of {} bytes with blksize {}", data.len(), self.rx.blksize);
                self.fail(ClientError::Negotiation(message));
            }
            Received::TooLarge => {
                self.pending_error = Some((ErrorCode::DiskFull, "too large".into()));
                self.fail(ClientError::Negotiation("the file exceeds the size limit".into()));
            }
        }
        if self.rx.expected > before {
            // Progress: the retransmission timer starts again from the last block received.
            self.retries = 0;
            self.deadline = Some(now + self.timeout);
        }
    }

    /// The next datagram to send into `out`; `false` when there is none.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if let Some((code, message)) = self.pending_error.take() {
            packet::encode_error(out, code, &message);
            return true;
        }
        match self.state {
            State::Requesting { sent: false } => {
                self.request(out);
                self.state = State::Requesting { sent: true };
                self.deadline = Some(now + self.timeout);
                true
            }
            State::Receiving | State::Done => match self.pending_ack.take() {
                Some(n) => {
                    packet::encode_ack(out, self.rx.wire(n));
                    self.last_acked = n;
                    self.deadline = if self.state == State::Done { None } else { Some(now + self.timeout) };
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// When [`ReadClient::handle_timeout`] should be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Resends the request or the last ACK when the deadline passed; gives up after the retry limit.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(d) if now >= d => {}
            _ => return,
        }
        self.retries += 1;
        if self.retries > self.config.retries {
            self.fail(ClientError::TimedOut);
            return;
        }
        match self.state {
            State::Requesting { .. } => self.state = State::Requesting { sent: false },
            // An ACK already waiting (newer than the last one sent) is not replaced by the old one.
            State::Receiving if self.pending_ack.is_none() => self.pending_ack = Some(self.last_acked),
            _ => {}
        }
    }

    /// Whether the download is over.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed) && self.pending_ack.is_none() && self.pending_error.is_none()
    }

    /// The result, once finished: the content, or why it failed.
    pub fn result(&self) -> Option<Result<&[u8], &ClientError>> {
        match self.state {
            State::Done => Some(Ok(&self.rx.data)),
            State::Failed => self.error.as_ref().map(Err),
            _ => None,
        }
    }

    /// Takes the content received so far (in order), for streaming to a file.
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.rx.data)
    }

    /// The size announced with `tsize`, if any.
    pub fn tsize(&self) -> Option<u64> {
        self.tsize
    }

    /// The block size in use.
    pub fn blksize(&self) -> usize {
        self.rx.blksize
    }

    /// The window in use.
    pub fn windowsize(&self) -> u64 {
        self.rx.windowsize
    }

    /// Blocks received out of order or duplicated.
    pub fn unexpected_blocks(&self) -> u64 {
        self.rx.unexpected
    }
}

/// The client side of an upload (write request), lock-step (RFC 1350, with RFC 2347–2349 `blksize`, `tsize` and
/// `timeout`): the WRQ until the server answers (ACK 0 or an OACK), then the shared [`crate::send`] machine with a
/// window of one, sending each block again when its ACK does not come (no back-off, as tftp-hpa's client) and
/// ignoring duplicate ACKs (no Sorcerer's Apprentice).
pub struct WriteClient {
    config: ClientConfig,
    filename: String,
    size: u64,
    sender: Sender,
    timer: Timer,
    state: WriteState,
    /// The request is to be sent (again).
    send_request: bool,
    pending_error: Option<(ErrorCode, String)>,
    error: Option<ClientError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    Requesting,
    Sending,
    Done,
    Failed,
}

impl WriteClient {
    /// An upload of `data` as `filename` (windowsize is not used: uploads are small).
    pub fn new(filename: &str, data: &[u8], config: ClientConfig) -> WriteClient {
        let timeout = config.timeout.map_or(config.retransmit, |t| Duration::from_secs(u64::from(t)));
        let data = if config.mode == Mode::NetAscii { crate::netascii::encode(data) } else { data.to_vec() };
        let size = data.len() as u64;
        WriteClient {
            filename: filename.to_string(),
            size,
            // Block numbers wrap to 0 after 65535, as tftpd-hpa expects.
            sender: Sender::new(Arc::new(data), 512, 1, 0),
            timer: Timer::new(timeout, config.retries, false),
            state: WriteState::Requesting,
            send_request: true,
            pending_error: None,
            error: None,
            config,
        }
    }

    fn fail(&mut self, e: ClientError) {
        self.error = Some(e);
        self.state = WriteState::Failed;
        self.timer.stop();
    }

    fn negotiate(&mut self, options: &[(Cow<'_, str>, Cow<'_, str>)]) -> Result<(), String> {
        // No windowsize: uploads are lock-step.
        let a = accept_oack(options, self.config.blksize, None)?;
        if let Some(t) = a.tsize.filter(|&t| t != self.size) {
            return Err(format!("tsize {t} is not the {} bytes offered", self.size));
        }
        if let Some(b) = a.blksize {
            self.sender.set_blksize(b);
        }
        if let Some(t) = a.timeout {
            self.timer.timeout = t;
        }
        Ok(())
    }

    fn start_sending(&mut self, now: Instant) {
        self.state = WriteState::Sending;
        self.sender.start();
        self.timer.progress(now);
        self.timer.due(now);
    }

    /// Feeds a datagram from the server's TID.
    pub fn handle(&mut self, datagram: &[u8], now: Instant) {
        let Ok(packet) = Packet::decode(datagram) else { return };
        match (packet, self.state) {
            (Packet::Oack { options }, WriteState::Requesting) => match self.negotiate(&options) {
                Ok(()) => self.start_sending(now),
                Err(message) => {
                    self.pending_error = Some((ErrorCode::OptionNegotiation, message.clone()));
                    self.fail(ClientError::Negotiation(message));
                }
            },
            // No OACK: the server ignored every option; RFC 1350 defaults apply.
            (Packet::Ack { block: 0 }, WriteState::Requesting) => {
                self.sender.set_blksize(512);
                self.start_sending(now);
            }
            (Packet::Ack { block }, WriteState::Sending) => {
                let acked = self.sender.ack(block, now, &mut self.timer);
                if acked == Acked::Completed {
                    self.state = WriteState::Done;
                }
            }
            (Packet::Error { code, message }, WriteState::Requesting | WriteState::Sending) => {
                self.fail(ClientError::Server { code, message: message.into_owned() });
            }
            _ => {}
        }
    }

    /// The next datagram to send into `out`; `false` when there is none.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if let Some((code, message)) = self.pending_error.take() {
            packet::encode_error(out, code, &message);
            return true;
        }
        match self.state {
            WriteState::Requesting if self.send_request => {
                self.send_request = false;
                let mut options: Vec<(&str, String)> = Vec::new();
                if self.config.tsize && self.config.mode != Mode::NetAscii {
                    options.push(("tsize", self.size.to_string()));
                }
                if let Some(b) = self.config.blksize {
                    options.push(("blksize", b.to_string()));
                }
                if let Some(t) = self.config.timeout {
                    options.push(("timeout", t.to_string()));
                }
                packet::encode_request(out, true, &self.filename, self.config.mode.as_str(), &options);
                self.timer.sent(now);
                true
            }
            WriteState::Sending => match self.sender.poll_data(now, out, &mut self.timer) {
                Ok(sent) => sent,
                Err(message) => {
                    self.fail(ClientError::Negotiation(message));
                    false
                }
            },
            _ => false,
        }
    }

    /// When [`WriteClient::handle_timeout`] should be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            WriteState::Requesting | WriteState::Sending => self.timer.poll(),
            _ => None,
        }
    }

    /// Sends the request or the block in flight again when the deadline passed; gives up after the retry limit.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.timer.expire(now) {
            Expiry::NotYet => {}
            Expiry::GaveUp => self.fail(ClientError::TimedOut),
            Expiry::Retry if self.state == WriteState::Requesting => self.send_request = true,
            Expiry::Retry => self.sender.retransmit(),
        }
    }

    /// Whether the upload is over.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, WriteState::Done | WriteState::Failed) && self.pending_error.is_none()
    }

    /// The result, once finished: the bytes sent, or why it failed.
    pub fn result(&self) -> Option<Result<u64, &ClientError>> {
        match self.state {
            WriteState::Done => Some(Ok(self.size)),
            WriteState::Failed => self.error.as_ref().map(Err),
            _ => None,
        }
    }

    /// The block size in use.
    pub fn blksize(&self) -> usize {
        self.sender.blksize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(block: u16, len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        packet::encode_data(&mut v, block, &vec![7u8; len]);
        v
    }

    fn acks(c: &mut ReadClient, now: Instant) -> Vec<u16> {
        let mut out = Vec::new();
        let mut v = Vec::new();
        while c.poll_transmit(now, &mut out) {
            if let Ok(Packet::Ack { block }) = Packet::decode(&out) {
                v.push(block);
            }
        }
        v
    }

    #[test]
    fn gap_then_fill() {
        let now = Instant::now();
        let mut c =
            ReadClient::new("f", ClientConfig { blksize: Some(512), windowsize: Some(8), ..ClientConfig::default() });
        let mut out = Vec::new();
        assert!(c.poll_transmit(now, &mut out));
        let mut oack = Vec::new();
        packet::encode_oack(&mut oack, &[("blksize".into(), "512".into()), ("windowsize".into(), "8".into())]);
        c.handle(&oack, now);
        assert_eq!(acks(&mut c, now), [0]);
        for b in [1, 2, 3, 4, 5, 6, 8] {
            c.handle(&data(b, 512), now);
        }
        assert_eq!(acks(&mut c, now), [6]);
        for b in [7, 8, 9, 11] {
            c.handle(&data(b, 512), now);
        }
        assert_eq!(acks(&mut c, now), [9]);
    }

    #[test]
    fn upload_lock_step_with_a_final_empty_block_and_duplicate_acks_ignored() {
        let now = Instant::now();
        let config = ClientConfig { blksize: Some(8), ..ClientConfig::default() };
        let mut c = WriteClient::new("r.xml", &[1u8; 16], config);
        let mut out = Vec::new();
        assert!(c.poll_transmit(now, &mut out));
        match Packet::decode(&out).unwrap() {
            Packet::Wrq { filename, options, .. } => {
                assert_eq!(filename, "r.xml");
                assert!(options.iter().any(|(k, v)| k == "tsize" && v == "16"));
            }
            p => panic!("{p:?}"),
        }
        let mut oack = Vec::new();
        packet::encode_oack(&mut oack, &[("blksize".into(), "8".into()), ("tsize".into(), "16".into())]);
        c.handle(&oack, now);
        let mut blocks = Vec::new();
        for _ in 0..3 {
            out.clear();
            assert!(c.poll_transmit(now, &mut out));
            let Packet::Data { block, data } = Packet::decode(&out).unwrap() else { panic!() };
            blocks.push((block, data.len()));
            let mut ack = Vec::new();
            packet::encode_ack(&mut ack, block);
            c.handle(&ack, now);
            c.handle(&ack, now); // a duplicate: ignored
        }
        assert_eq!(blocks, [(1, 8), (2, 8), (3, 0)]);
        assert!(c.is_finished());
        assert_eq!(c.result(), Some(Ok(16)));
        // A lost ACK: the block goes again after the timeout.
        let mut c = WriteClient::new("r.xml", b"abc", ClientConfig::default());
        assert!(c.poll_transmit(now, &mut out));
        let mut ack0 = Vec::new();
        packet::encode_ack(&mut ack0, 0);
        c.handle(&ack0, now);
        assert!(c.poll_transmit(now, &mut out));
        assert!(!c.poll_transmit(now, &mut out));
        c.handle_timeout(now + Duration::from_secs(2));
        out.clear();
        assert!(c.poll_transmit(now, &mut out));
        assert!(matches!(Packet::decode(&out).unwrap(), Packet::Data { block: 1, .. }));
    }
}
