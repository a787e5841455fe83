//! The TFTP client state machines (download and upload) take any datagrams from the server without panicking, and an
//! upload never sends a DATA block outside the file.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use provisor_tftp::client::{ClientConfig, ReadClient, WriteClient};
use provisor_tftp::packet::Packet;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the options; the rest is datagrams, each prefixed with its length (one byte).
    let Some((&flags, mut rest)) = data.split_first() else { return };
    let config = ClientConfig {
        blksize: (flags & 1 != 0).then_some(8 + u16::from(flags >> 4)),
        windowsize: (flags & 2 != 0).then_some(4),
        timeout: (flags & 4 != 0).then_some(1),
        ..ClientConfig::default()
    };
    let file = vec![0x5a; usize::from(flags) * 3];
    let start = Instant::now();
    let mut reader = ReadClient::new("f", config.clone());
    let mut writer = WriteClient::new("f", &file, config);
    let mut out = Vec::new();
    let mut step = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let (datagram, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        step += 1;
        let now = start + Duration::from_millis(step * 700);
        reader.handle(datagram, now);
        writer.handle(datagram, now);
        reader.handle_timeout(now);
        writer.handle_timeout(now);
        while reader.poll_transmit(now, &mut out) {}
        while writer.poll_transmit(now, &mut out) {
            if let Ok(Packet::Data { data, .. }) = Packet::decode(&out) {
                assert!(data.len() <= writer.blksize() && data.iter().all(|&b| b == 0x5a));
            }
        }
    }
});
