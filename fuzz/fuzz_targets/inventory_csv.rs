//! `provisor device import`: any bytes as a devices CSV, read and checked against an inventory in memory. Every
//! device it accepts has a valid MAC and parameters the dictionary accepts; nothing panics.
#![no_main]

use std::future::Future;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use provisor_server::inventory::parameter::{check_known, check_parameter};
use provisor_server::inventory::{MemoryStore, csv};

fuzz_target!(|data: &[u8]| {
    let store = MemoryStore::new();
    let flags = data.first().copied().unwrap_or(0);
    let options = csv::ImportOptions { update: flags & 1 == 1, allow_unknown: flags & 2 == 2 };
    let mut read = std::pin::pin!(csv::read_devices(&store, data, options));
    // The memory store never waits: one poll finishes the import check.
    let Poll::Ready(result) = read.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("an in-memory import check does not wait")
    };
    match result {
        Ok(import) => {
            for d in &import.add {
                assert_eq!(d.mac.as_str().len(), 12);
                for (name, value) in &d.params {
                    assert!(check_parameter(name, value).is_ok(), "{name}={value:?} was accepted");
                    assert!(options.allow_unknown || check_known(name).is_ok(), "unknown {name} was accepted");
                }
            }
        }
        Err(csv::ImportError::Rows(rows)) => assert!(!rows.is_empty()),
        Err(e) => panic!("unexpected {e}"),
    }
});
