//! Limits on what an unauthenticated client can learn or write, per minute: the MAC-enumeration guard and the
//! per-device rate of reports and syslog lines. Sans-IO: every call takes `now` (Unix milliseconds), so tests drive
//! it with a fixed clock.
//!
//! A phone asks for its own files, so one address naming many MACs is a scan: the guard counts the **distinct** MACs
//! each address names without proving it is that device (a verified client certificate), and the distinct MACs named
//! by everyone, per minute. Failed lookups (404/403) are counted too, as before. A MAC already named from the same
//! address this minute never counts twice, so a phone retrying its own file is never limited by its retries.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;

use crate::config::Limits;
use crate::inventory::Mac;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The address had too many failed lookups this minute.
    Failures,
    /// The address named too many distinct MACs this minute.
    MacsFromAddress,
    /// Everyone together named too many distinct MACs this minute.
    MacsInTotal,
    /// The device sent too many reports or log lines this minute.
    DeviceEvents,
}

impl Limited {
    /// The sentence for the response and the audit log.
    pub fn note(self) -> &'static str {
        match self {
            Limited::Failures => "too many failed lookups from this address",
            Limited::MacsFromAddress => "too many different devices named from this address",
            Limited::MacsInTotal => "too many different devices named by unauthenticated clients this minute",
            Limited::DeviceEvents => "too many reports or log lines from this device",
        }
    }
}

/// One minute's counts.
#[derive(Default)]
struct Window {
    minute: u64,
    failures: HashMap<IpAddr, u32>,
    macs_by_address: HashMap<IpAddr, HashSet<Mac>>,
    macs: HashSet<Mac>,
    device_events: HashMap<Mac, u32>,
    /// Addresses already logged as limited this minute (one warning each, not one per request).
    warned: HashSet<(IpAddr, u8)>,
}

/// The guard: counts per minute, all reset when the minute turns.
pub struct Guard {
    limits: Limits,
    window: Mutex<Window>,
}

/// Entries kept per map before the minute's state is considered a flood and trimmed (memory stays bounded).
const MAX_TRACKED: usize = 200_000;

impl Guard {
    /// A guard with these limits.
    pub fn new(limits: Limits) -> Guard {
        Guard { limits, window: Mutex::new(Window::default()) }
    }

    fn window(&self, now_ms: i64) -> std::sync::MutexGuard<'_, Window> {
        let minute = now_ms.max(0) as u64 / 60_000;
        // A poisoned lock only means another request panicked mid-update; the counts are still usable.
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.minute != minute {
            *w = Window { minute, ..Window::default() };
        }
        w
    }

    /// Whether `ip` may make another request at all (its failed lookups this minute are under the limit).
    pub fn admit(&self, ip: IpAddr, now_ms: i64) -> Result<(), Limited> {
        let w = self.window(now_ms);
        match w.failures.get(&ip) {
            Some(&n) if n >= self.limits.failed_lookups_per_minute => Err(Limited::Failures),
            _ => Ok(()),
        }
    }

    /// Counts a failed lookup (404/403) from `ip`.
    pub fn failed(&self, ip: IpAddr, now_ms: i64) {
        let mut w = self.window(now_ms);
        if w.failures.len() >= MAX_TRACKED {
            w.failures.clear();
        }
        let n = w.failures.entry(ip).or_insert(0);
        *n += 1;
        if *n == self.limits.failed_lookups_per_minute {
            tracing::warn!("{ip}: {n} failed device lookups this minute; refusing it until the next");
        }
    }

    /// Counts `mac` as named by `ip` without proof of identity; refuses it when the address or everyone together has
    /// named too many distinct MACs this minute. A MAC this address already named this minute always passes.
    pub fn name_mac(&self, ip: IpAddr, mac: &Mac, now_ms: i64) -> Result<(), Limited> {
        let mut w = self.window(now_ms);
        if w.macs_by_address.get(&ip).is_some_and(|s| s.contains(mac)) {
            return Ok(());
        }
        let from_address = w.macs_by_address.get(&ip).map_or(0, HashSet::len);
        let refused = if from_address >= self.limits.macs_per_address_per_minute as usize {
            Some(Limited::MacsFromAddress)
        } else if !w.macs.contains(mac) && w.macs.len() >= self.limits.macs_per_minute as usize {
            Some(Limited::MacsInTotal)
        } else {
            None
        };
        if let Some(limited) = refused {
            if w.warned.len() < MAX_TRACKED && w.warned.insert((ip, limited as u8)) {
                tracing::warn!("{ip}: {}; refusing new device names until the next minute", limited.note());
            }
            return Err(limited);
        }
        if w.macs_by_address.len() >= MAX_TRACKED {
            w.macs_by_address.clear();
        }
        w.macs_by_address.entry(ip).or_default().insert(mac.clone());
        w.macs.insert(mac.clone());
        Ok(())
    }

    /// Counts one report or syslog line of `mac`; refuses it over `[limits] device_events_per_minute`.
    pub fn device_event(&self, mac: &Mac, now_ms: i64) -> Result<(), Limited> {
        let mut w = self.window(now_ms);
        if w.device_events.len() >= MAX_TRACKED {
            w.device_events.clear();
        }
        let n = w.device_events.entry(mac.clone()).or_insert(0);
        if *n >= self.limits.device_events_per_minute {
            return Err(Limited::DeviceEvents);
        }
        *n += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(i: u32) -> Mac {
        format!("000e08{i:06x}").parse().unwrap()
    }

    fn limits() -> Limits {
        Limits {
            failed_lookups_per_minute: 3,
            macs_per_address_per_minute: 4,
            macs_per_minute: 10,
            device_events_per_minute: 2,
            ..Limits::default()
        }
    }

    #[test]
    fn distinct_macs_per_address_and_in_total() {
        let g = Guard::new(limits());
        let a: IpAddr = [127, 0, 0, 2].into();
        for i in 0..4 {
            assert_eq!(g.name_mac(a, &mac(i), 0), Ok(()));
        }
        assert_eq!(g.name_mac(a, &mac(4), 1), Err(Limited::MacsFromAddress));
        assert_eq!(g.name_mac(a, &mac(0), 2), Ok(()), "a MAC already named is no new name");
        // Other addresses, 4 names each: the total stops at 10 distinct MACs.
        let mut refused = 0;
        for host in 3..=6u8 {
            for i in 0..4 {
                if g.name_mac([127, 0, 0, host].into(), &mac(100 + u32::from(host) * 10 + i), 3).is_err() {
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 16 - 6);
        // A MAC someone else already named passes the total limit.
        assert_eq!(g.name_mac([127, 0, 0, 9].into(), &mac(1), 4), Ok(()));
        // The next minute starts afresh.
        assert_eq!(g.name_mac(a, &mac(4), 60_000), Ok(()));
    }

    #[test]
    fn failures_and_device_events() {
        let g = Guard::new(limits());
        let a: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..3 {
            assert_eq!(g.admit(a, 0), Ok(()));
            g.failed(a, 0);
        }
        assert_eq!(g.admit(a, 59_999), Err(Limited::Failures));
        assert_eq!(g.admit([127, 0, 0, 3].into(), 0), Ok(()));
        assert_eq!(g.admit(a, 60_000), Ok(()));
        assert_eq!(g.device_event(&mac(1), 0), Ok(()));
        assert_eq!(g.device_event(&mac(1), 0), Ok(()));
        assert_eq!(g.device_event(&mac(1), 0), Err(Limited::DeviceEvents));
        assert_eq!(g.device_event(&mac(2), 0), Ok(()));
    }
}
