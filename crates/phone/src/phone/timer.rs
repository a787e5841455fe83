//! The phone's timers in one table (as quinn-proto's `TimerTable`): the resync, the forced resync during a call, the
//! upgrade retry and the report, each a virtual time or unset. [`super::Phone::poll_timeout`] is the earliest that
//! may fire; [`super::Phone::handle_timeout`] looks at each in turn.

use provisor_rules::schedule::Reason;

/// One of the phone's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The next resync (`Resync_On_Reset`, `Resync_Periodic`, `Resync_At`, error retries, requests).
    Resync,
    /// A resync deferred by an active line runs at the latest then (`Forced_Resync_Delay`).
    Forced,
    /// A failed upgrade is retried then (`Upgrade_Error_Retry_Delay`).
    Upgrade,
    /// A report is due (`Report_To_Server`).
    Report,
}

const TIMERS: usize = 4;

/// When each timer fires, and why the resync timer was set.
#[derive(Debug, Clone)]
pub struct TimerTable {
    at: [Option<u64>; TIMERS],
    reason: Reason,
}

impl Default for TimerTable {
    fn default() -> TimerTable {
        TimerTable { at: [None; TIMERS], reason: Reason::Boot }
    }
}

impl TimerTable {
    /// When `timer` fires.
    pub fn get(&self, timer: Timer) -> Option<u64> {
        self.at[timer as usize]
    }

    /// Sets `timer` to fire at `at`.
    pub fn set(&mut self, timer: Timer, at: u64) {
        self.at[timer as usize] = Some(at);
    }

    /// Sets the resync timer, with its reason.
    pub fn set_resync(&mut self, at: u64, reason: Reason) {
        self.set(Timer::Resync, at);
        self.reason = reason;
    }

    /// The resync timer and its reason.
    pub fn resync(&self) -> Option<(u64, Reason)> {
        self.get(Timer::Resync).map(|t| (t, self.reason))
    }

    /// Unsets `timer`; returns when it would have fired.
    pub fn stop(&mut self, timer: Timer) -> Option<u64> {
        self.at[timer as usize].take()
    }

    /// Whether `timer` is set.
    pub fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// Whether `timer` is set and due at `now`.
    pub fn is_due(&self, timer: Timer, now: u64) -> bool {
        self.get(timer).is_some_and(|t| now >= t)
    }

    /// The earliest wake-up. While the phone is `busy` (a resync or an upgrade in progress) only the report timer
    /// counts; a forced-resync time replaces the resync time it defers.
    pub fn next(&self, busy: bool) -> Option<u64> {
        let report = self.get(Timer::Report);
        if busy {
            return report;
        }
        let resync = self.get(Timer::Forced).or(self.get(Timer::Resync));
        [resync, self.get(Timer::Upgrade), report].into_iter().flatten().min()
    }
}
