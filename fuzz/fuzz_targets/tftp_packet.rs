//! The TFTP packet decoder and option negotiation never panic; a decoded request re-encodes to a packet that
//! decodes to the same request; netascii converted as it streams equals the whole-file conversion at any offset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

use provisor_tftp::content::Content;
use provisor_tftp::netascii::{self, NetasciiContent};
use provisor_tftp::packet::{self, Mode, Packet};
use provisor_tftp::server::{ServerConfig, negotiate};

fuzz_target!(|data: &[u8]| {
    let whole = netascii::encode(data);
    let streamed = NetasciiContent::new(Arc::new(data.to_vec())).expect("bytes in memory read fully");
    assert_eq!(streamed.len(), whole.len() as u64);
    let offset = data.first().map_or(0, |&b| usize::from(b) * 7) % (whole.len() + 1);
    let mut buf = vec![0u8; 700];
    let n = streamed.read_at(offset as u64, &mut buf).expect("bytes in memory");
    assert_eq!(&buf[..n], &whole[offset..(offset + 700).min(whole.len())]);
    let Ok(p) = Packet::decode(data) else { return };
    if let Packet::Rrq { filename, mode, options } = &p {
        if let Some(m) = Mode::parse(mode) {
            let _ = negotiate(options, m, data.len() as u64, &ServerConfig::default());
        }
        if !filename.contains('\0') && !mode.contains('\0') && options.iter().all(|(a, b)| !a.contains('\0') && !b.contains('\0')) {
            let opts: Vec<(&str, String)> = options.iter().map(|(a, b)| (a.as_ref(), b.to_string())).collect();
            let mut out = Vec::new();
            packet::encode_request(&mut out, false, filename, mode, &opts);
            let again = Packet::decode(&out).expect("re-encoded request decodes");
            assert_eq!(again, p.clone());
        }
    }
});
