//! The sending half of a transfer, shared by the server of a read ([`crate::server::ReadTransfer`]) and the client of
//! a write ([`crate::client::WriteClient`]): DATA blocks from a [`Content`] in windows (RFC 7440; a window of one is
//! RFC 1350's lock-step), acknowledgments across block-number rollover, retransmission only on timeout (never on a
//! duplicate ACK: RFC 1123 §4.2.3.1, the Sorcerer's Apprentice), a retry limit and a stall limit.
//!
//! A timeout resends one block, not the window: the last block sent. A receiver that has it acknowledges it again
//! (its ACK was lost); one that lacks an earlier block sees it out of order and acknowledges the last block it has in
//! order (RFC 7440 §4; tftpd-hpa, atftp and Provisor's client do so); either way the next window starts where the
//! receiver is. With back-off, consecutive timeouts wait ×2 each (at most ×16), as tftpd-hpa does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::content::Content;
use crate::packet;

/// Blocks read from the content at once (bounded, so thousands of transfers stay small in memory).
const READ_AHEAD_BLOCKS: usize = 8;

/// Counters, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// DATA packets sent, retransmissions included.
    pub data_sent: u64,
    /// DATA packets sent again after a timeout.
    pub retransmitted: u64,
    /// ACKs ignored because they were duplicates or stale.
    pub ignored_acks: u64,
}

/// The retransmission timer of one transfer, for its opening packet (OACK, WRQ) and its DATA alike.
#[derive(Debug, Clone)]
pub(crate) struct Timer {
    /// The retransmission timeout.
    pub timeout: Duration,
    max_retries: u32,
    retries: u32,
    backoff: bool,
    deadline: Option<Instant>,
    last_progress: Option<Instant>,
    stall_limit: Option<Duration>,
}

/// What an expired deadline calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Not yet.
    NotYet,
    /// Send again (the retry is counted).
    Retry,
    /// The retries or the stall limit are used up.
    GaveUp,
}

impl Timer {
    /// A timer of `timeout`, giving up after `max_retries` retransmissions; with `backoff`, each consecutive
    /// retransmission waits twice as long (at most ×16).
    pub fn new(timeout: Duration, max_retries: u32, backoff: bool) -> Timer {
        Timer { timeout, max_retries, retries: 0, backoff, deadline: None, last_progress: None, stall_limit: None }
    }

    /// Gives up after `limit` without progress, however long the retransmission timeout.
    pub fn stall_after(&mut self, limit: Duration) {
        self.stall_limit = Some(limit);
    }

    /// The wait before the next retransmission.
    fn wait(&self) -> Duration {
        if self.backoff { self.timeout * (1u32 << self.retries.min(4)) } else { self.timeout }
    }

    /// Something was sent at `now`: the next retransmission is due a wait later.
    pub fn sent(&mut self, now: Instant) {
        self.last_progress.get_or_insert(now);
        self.deadline = Some(now + self.wait());
    }

    /// Makes the machine send at once (`now` is due).
    pub fn due(&mut self, now: Instant) {
        self.deadline = Some(now);
    }

    /// The peer answered with progress: the retries start over.
    pub fn progress(&mut self, now: Instant) {
        self.retries = 0;
        self.last_progress = Some(now);
    }

    /// The peer answered without progress but is alive: the retries start over, the stall clock does not.
    pub fn alive(&mut self) {
        self.retries = 0;
    }

    /// Nothing more to wait for.
    pub fn stop(&mut self) {
        self.deadline = None;
    }

    /// The transfer starts its clocks at `now`, if they have not started.
    pub fn begin(&mut self, now: Instant) {
        self.last_progress.get_or_insert(now);
    }

    fn stall_deadline(&self) -> Option<Instant> {
        Some(self.last_progress? + self.stall_limit?)
    }

    /// Whether the stall limit passed at `now`.
    pub fn stalled(&self, now: Instant) -> bool {
        self.stall_deadline().is_some_and(|s| now >= s)
    }

    /// When the machine wants to be woken.
    pub fn poll(&self) -> Option<Instant> {
        match (self.deadline, self.stall_deadline()) {
            (Some(d), Some(s)) => Some(d.min(s)),
            (d, s) => d.or(s),
        }
    }

    /// Whether the deadline passed at `now`, and what that calls for.
    pub fn expire(&mut self, now: Instant) -> Expiry {
        if self.stalled(now) {
            return Expiry::GaveUp;
        }
        match self.deadline {
            Some(d) if now >= d => {}
            _ => return Expiry::NotYet,
        }
        self.retries += 1;
        if self.retries > self.max_retries { Expiry::GaveUp } else { Expiry::Retry }
    }
}

/// What an ACK did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acked {
    /// New blocks were acknowledged.
    Progress,
    /// The last block was acknowledged: the transfer is complete.
    Completed,
    /// A duplicate or stale ACK, ignored.
    Ignored,
}

/// The DATA phase of a transfer.
pub(crate) struct Sender {
    content: Arc<dyn Content>,
    size: u64,
    blksize: usize,
    windowsize: u64,
    rollover_to: u16,
    total_blocks: u64,
    /// The first block not yet acknowledged.
    window_start: u64,
    /// The next block to send.
    next_send: u64,
    /// The highest block sent so far.
    highest_sent: u64,
    /// A block to send alone after a timeout, to learn where the receiver is.
    probe: Option<u64>,
    /// A probe went out and its answer has not come: an ACK of the block before the window then means "resume
    /// from the window's start" (once; further duplicates are ignored as always).
    probing: bool,
    /// Whether DATA may go (after the opening exchange).
    started: bool,
    stats: Stats,
    /// Read-ahead: content bytes starting at `cached_at`, so a file is read in chunks rather than a block at a time.
    cache: Vec<u8>,
    cached_at: u64,
}

impl Sender {
    /// Sends `content` in blocks of `blksize`, `windowsize` at a time; block numbers wrap to `rollover_to` (0 or 1).
    pub fn new(content: Arc<dyn Content>, blksize: usize, windowsize: u64, rollover_to: u16) -> Sender {
        let size = content.len();
        let blksize = blksize.max(8);
        Sender {
            content,
            size,
            blksize,
            windowsize: windowsize.max(1),
            rollover_to,
            total_blocks: size / blksize as u64 + 1,
            window_start: 1,
            next_send: 1,
            highest_sent: 0,
            probe: None,
            probing: false,
            started: false,
            stats: Stats::default(),
            cache: Vec::new(),
            cached_at: 0,
        }
    }

    /// The opening exchange is over (or there was none): DATA may go.
    pub fn start(&mut self) {
        self.started = true;
    }

    /// Changes the block size before the first block (an OACK granted another one).
    pub fn set_blksize(&mut self, blksize: usize) {
        debug_assert!(!self.started);
        self.blksize = blksize.max(8);
        self.total_blocks = self.size / self.blksize as u64 + 1;
    }

    /// The block number on the wire for absolute block `n` (1-based).
    pub(crate) fn wire(&self, n: u64) -> u16 {
        if self.rollover_to == 1 && n > 0 { ((n - 1) % 65535 + 1) as u16 } else { (n % 65536) as u16 }
    }

    /// The absolute block an ACK refers to, if it lies between the last acknowledged block and the highest sent.
    fn acked_block(&self, wire: u16) -> Option<u64> {
        let base = self.window_start - 1;
        let cycle: u64 = if self.rollover_to == 1 { 65535 } else { 65536 };
        let base_wire = u64::from(self.wire(base));
        let w = u64::from(wire);
        if self.rollover_to == 1 && w == 0 {
            return (base == 0).then_some(0);
        }
        let delta = (w + cycle - base_wire) % cycle;
        let n = base + delta;
        (n <= self.highest_sent).then_some(n)
    }

    /// An ACK of wire block `block` at `now`.
    pub fn ack(&mut self, block: u16, now: Instant, timer: &mut Timer) -> Acked {
        match self.acked_block(block) {
            Some(n) if n >= self.window_start => {
                self.window_start = n + 1;
                self.next_send = n + 1;
                self.probe = None;
                self.probing = false;
                timer.progress(now);
                if self.window_start > self.total_blocks {
                    timer.stop();
                    Acked::Completed
                } else {
                    timer.sent(now);
                    Acked::Progress
                }
            }
            Some(n) if self.probing && n + 1 == self.window_start => {
                // The receiver answered the probe: it has nothing past the window's start. It is alive, so the
                // retries start over (they detect a peer that is gone; the stall limit bounds time without
                // progress, however lossy or reordering the path).
                self.probing = false;
                self.next_send = self.window_start;
                timer.alive();
                timer.sent(now);
                Acked::Ignored
            }
            _ => {
                self.stats.ignored_acks += 1;
                Acked::Ignored
            }
        }
    }

    /// The next DATA datagram into `out`: `Ok(false)` when the window is out; `Err` when the content cannot be read.
    pub fn poll_data(&mut self, now: Instant, out: &mut Vec<u8>, timer: &mut Timer) -> Result<bool, String> {
        if !self.started {
            return Ok(false);
        }
        let window_end = (self.window_start + self.windowsize - 1).min(self.total_blocks);
        let n = match self.probe.take() {
            Some(n) => {
                self.probing = true;
                n
            }
            None if self.next_send > window_end => return Ok(false),
            None => {
                self.next_send += 1;
                self.next_send - 1
            }
        };
        let offset = (n - 1) * self.blksize as u64;
        let len = (self.size.saturating_sub(offset)).min(self.blksize as u64) as usize;
        self.fill(offset, len)?;
        let start = (offset - self.cached_at) as usize;
        packet::encode_data(out, self.wire(n), &self.cache[start..start + len]);
        if n <= self.highest_sent {
            self.stats.retransmitted += 1;
        }
        self.highest_sent = self.highest_sent.max(n);
        self.stats.data_sent += 1;
        timer.sent(now);
        Ok(true)
    }

    /// Counts an ignored datagram.
    pub fn ignored(&mut self) {
        self.stats.ignored_acks += 1;
    }

    /// Whether part of the current window is still to be sent (a deadline then is no reason to retransmit).
    pub fn window_open(&self) -> bool {
        self.started && self.next_send <= (self.window_start + self.windowsize - 1).min(self.total_blocks)
    }

    /// After a timeout: one block, the last one sent, asks the receiver where it is.
    pub fn retransmit(&mut self) {
        self.probe = Some(self.highest_sent.max(self.window_start));
    }

    /// Makes `[offset, offset + len)` available in the read-ahead buffer.
    fn fill(&mut self, offset: u64, len: usize) -> Result<(), String> {
        let cached_end = self.cached_at + self.cache.len() as u64;
        if offset >= self.cached_at && offset + len as u64 <= cached_end {
            return Ok(());
        }
        let want = (self.blksize * READ_AHEAD_BLOCKS).min((self.size - offset.min(self.size)) as usize).max(len);
        self.cache.resize(want, 0);
        let got = self.content.read_at(offset, &mut self.cache).map_err(|e| e.to_string())?;
        if got < len {
            return Err("the file changed size during the transfer".into());
        }
        self.cache.truncate(got);
        self.cached_at = offset;
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes of content.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The block size in use.
    pub fn blksize(&self) -> usize {
        self.blksize
    }

    /// Number of DATA blocks of the transfer.
    pub fn total_blocks(&self) -> u64 {
        self.total_blocks
    }
}
