//! The receiving half of a transfer, shared by the client of a read and the server of a write: block sequencing,
//! windows (RFC 7440), block-number rollover, netascii decoding and a size limit.

use crate::netascii;

/// What a received DATA block calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// Nothing to send yet (inside a window).
    Nothing,
    /// Acknowledge this absolute block number.
    Ack(u64),
    /// The last block: acknowledge it; the transfer is complete.
    Last(u64),
    /// The block is larger than the negotiated block size.
    Oversized,
    /// The data would exceed the size limit.
    TooLarge,
}

/// In-order reassembly of DATA blocks.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub blksize: usize,
    pub windowsize: u64,
    /// The next absolute block expected (1-based).
    pub expected: u64,
    in_window: u64,
    wraps_to_one: bool,
    netascii: bool,
    pending_cr: bool,
    limit: Option<u64>,
    received: u64,
    pub data: Vec<u8>,
    /// Duplicate or out-of-order blocks seen.
    pub unexpected: u64,
}

impl Receiver {
    pub fn new(netascii: bool, limit: Option<u64>) -> Receiver {
        Receiver {
            blksize: 512,
            windowsize: 1,
            expected: 1,
            in_window: 0,
            wraps_to_one: false,
            netascii,
            pending_cr: false,
            limit,
            received: 0,
            data: Vec::new(),
            unexpected: 0,
        }
    }

    /// The block number on the wire for absolute block `n`, following the sender's rollover.
    pub fn wire(&self, n: u64) -> u16 {
        if self.wraps_to_one && n > 0 { ((n - 1) % 65535 + 1) as u16 } else { (n % 65536) as u16 }
    }

    /// The last block received in order.
    pub fn last_in_order(&self) -> u64 {
        self.expected - 1
    }

    pub fn block(&mut self, block: u16, data: &[u8]) -> Received {
        let accept = if block == self.wire(self.expected) {
            true
        } else if self.expected > 65535 && self.expected.is_multiple_of(65536) && block == 1 && !self.wraps_to_one {
            // The sender wrapped 65535 → 1 (tftpd-hpa `rollover=1` style): follow it from here on.
            self.wraps_to_one = true;
            true
        } else {
            false
        };
        if !accept {
            // A duplicate (our ACK was lost) or a block past a gap: acknowledge the last in-order block.
            self.unexpected += 1;
            self.in_window = 0;
            return Received::Ack(self.last_in_order());
        }
        if data.len() > self.blksize {
            return Received::Oversized;
        }
        self.received += data.len() as u64;
        if self.limit.is_some_and(|l| self.received > l) {
            return Received::TooLarge;
        }
        if self.netascii {
            netascii::decode(data, &mut self.pending_cr, &mut self.data);
        } else {
            self.data.extend_from_slice(data);
        }
        self.expected += 1;
        self.in_window += 1;
        if data.len() < self.blksize {
            if self.pending_cr {
                self.data.push(b'\r');
                self.pending_cr = false;
            }
            self.in_window = 0;
            return Received::Last(self.last_in_order());
        }
        if self.in_window >= self.windowsize {
            self.in_window = 0;
            return Received::Ack(self.last_in_order());
        }
        Received::Nothing
    }
}
