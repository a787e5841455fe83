//! When the phone resyncs and retries: pure functions of (parameters, state, random source, time of day).
//!
//! Cisco "Provisioning Formats": *Enable Parameters* (`Resync_On_Reset` with a random delay up to
//! `Resync_Random_Delay`), *Triggers* (`Resync_Periodic`, `Resync_Error_Retry_Delay` — 0 means no retry —,
//! `Upgrade_Error_Retry_Delay`, `Resync_Trigger_1/2`, `Resync_At` with `Resync_At_Random_Delay`, which overrides
//! `Resync_Periodic`) and *Configurable Schedules* ("a comma-separated list of consecutive delay elements. The last
//! element in the sequence is implicitly repeated forever. [...] a plus sign to specify another numeric value that
//! appends a random extra delay"). `Forced_Resync_Delay`: the longest a due resync waits for the phone to be idle.

use crate::SyntaxError;
use crate::condition;
use crate::macros::Variables;

/// A source of randomness, so schedules are reproducible in tests and simulations.
pub trait Random {
    /// A uniformly distributed integer in `0..=max`.
    fn up_to(&mut self, max: u64) -> u64;
}

/// SplitMix64: a small, fast, seedable generator (not for secrets).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl Random for SplitMix64 {
    fn up_to(&mut self, max: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        if max == u64::MAX { z } else { z % (max + 1) }
    }
}

/// One element of a schedule: `base` seconds plus a random extra of up to `random` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// Fixed part, in seconds.
    pub base: u64,
    /// Largest random extra, in seconds.
    pub random: u64,
}

/// A delay schedule such as `3600`, `3600+600` or `1800,3600,7200,14400+3600`. Empty means "never".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    /// The elements; the last repeats forever.
    pub elements: Vec<Delay>,
}

impl Schedule {
    /// Parses the extended syntax. An empty value or a lone `0` gives the empty schedule ("does not resync").
    pub fn parse(text: &str) -> Result<Schedule, SyntaxError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(Schedule::default());
        }
        let mut elements = Vec::new();
        let mut offset = 0;
        for part in text.split(',') {
            let col = text[..offset].chars().count() + 1 + (part.len() - part.trim_start().len());
            let number = |s: &str, what: &str| -> Result<u64, SyntaxError> {
                s.trim().parse::<u64>().map_err(|_| {
                    SyntaxError::new(col, format!("{what} {:?} is not a whole number of seconds", s.trim()))
                })
            };
            let (base, random) = match part.split_once('+') {
                Some((b, r)) => (number(b, "delay")?, number(r, "random extra")?),
                None => (number(part, "delay")?, 0),
            };
            elements.push(Delay { base, random });
            offset += part.len() + 1;
        }
        if elements == [Delay { base: 0, random: 0 }] {
            elements.clear();
        }
        Ok(Schedule { elements })
    }

    /// The `n`-th delay (0-based; past the end, the last element), drawn with `rng`; `None` for an empty schedule.
    pub fn delay(&self, n: usize, rng: &mut dyn Random) -> Option<u64> {
        let d = self.elements.get(n).or(self.elements.last())?;
        Some(d.base + if d.random > 0 { rng.up_to(d.random) } else { 0 })
    }
}

/// A time of day, `hhmm` (24-hour), as `Resync_At` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    /// Seconds since midnight.
    pub seconds: u32,
}

impl TimeOfDay {
    /// Parses `hhmm`; an empty value gives `None` (the feature is off).
    pub fn parse(text: &str) -> Result<Option<TimeOfDay>, SyntaxError> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        let ok = t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit());
        let (h, m) =
            if ok { (t[..2].parse::<u32>().unwrap_or(99), t[2..].parse::<u32>().unwrap_or(99)) } else { (99, 99) };
        if h > 23 || m > 59 {
            return Err(SyntaxError::new(1, format!("{t:?} is not a time of day hhmm (24-hour), such as 0230")));
        }
        Ok(Some(TimeOfDay { seconds: h * 3600 + m * 60 }))
    }
}

/// The resync parameters that drive scheduling, already parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResyncParameters {
    /// `Resync_On_Reset`.
    pub on_reset: bool,
    /// `Resync_Random_Delay`, seconds.
    pub random_delay: u64,
    /// `Resync_Periodic`.
    pub periodic: Schedule,
    /// `Resync_Error_Retry_Delay`.
    pub error_retry: Schedule,
    /// `Upgrade_Error_Retry_Delay`.
    pub upgrade_retry: Schedule,
    /// `Resync_At`.
    pub at: Option<TimeOfDay>,
    /// `Resync_At_Random_Delay`, seconds.
    pub at_random_delay: u64,
    /// `Forced_Resync_Delay`, seconds.
    pub forced_delay: u64,
    /// `Resync_Trigger_1` and `Resync_Trigger_2` (empty when unset).
    pub triggers: [String; 2],
}

/// A parameter value that cannot be used, by name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {error}")]
pub struct ParameterError {
    /// The parameter.
    pub parameter: String,
    /// What is wrong with its value.
    pub error: SyntaxError,
}

impl ResyncParameters {
    /// Reads the parameters through `get` (which returns a parameter's current value), with the guides' defaults
    /// for parameters that have no value.
    pub fn from_parameters(get: impl Fn(&str) -> Option<String>) -> Result<ResyncParameters, ParameterError> {
        let value = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_string());
        fn wrap(parameter: &'static str) -> impl Fn(SyntaxError) -> ParameterError {
            move |error| ParameterError { parameter: parameter.to_string(), error }
        }
        let seconds = |name: &str, default: &str| -> Result<u64, ParameterError> {
            let v = value(name, default);
            if v.trim().is_empty() {
                return Ok(0);
            }
            v.trim().parse::<u64>().map_err(|_| ParameterError {
                parameter: name.to_string(),
                error: SyntaxError::new(1, format!("{v:?} is not a whole number of seconds")),
            })
        };
        Ok(ResyncParameters {
            on_reset: value("Resync_On_Reset", "Yes").trim().eq_ignore_ascii_case("yes"),
            random_delay: seconds("Resync_Random_Delay", "2")?,
            periodic: Schedule::parse(&value("Resync_Periodic", "3600")).map_err(wrap("Resync_Periodic"))?,
            error_retry: Schedule::parse(&value("Resync_Error_Retry_Delay", "3600"))
                .map_err(wrap("Resync_Error_Retry_Delay"))?,
            upgrade_retry: Schedule::parse(&value("Upgrade_Error_Retry_Delay", "3600"))
                .map_err(wrap("Upgrade_Error_Retry_Delay"))?,
            at: TimeOfDay::parse(&value("Resync_At", "")).map_err(wrap("Resync_At"))?,
            at_random_delay: seconds("Resync_At_Random_Delay", "600")?,
            forced_delay: seconds("Forced_Resync_Delay", "14400")?,
            triggers: [value("Resync_Trigger_1", ""), value("Resync_Trigger_2", "")],
        })
    }
}

/// Why the next resync happens when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `Resync_On_Reset` after boot.
    Boot,
    /// `Resync_Periodic`.
    Periodic,
    /// `Resync_At`.
    ResyncAt,
    /// `Resync_Error_Retry_Delay` after a failure.
    ErrorRetry,
    /// Asked for: SIP NOTIFY `Event: resync` (`Resync_From_SIP`), or the phone's `/admin/resync`.
    Request,
    /// `Resync_After_Upgrade_Attempt`.
    AfterUpgrade,
}

impl Reason {
    /// A stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Boot => "boot",
            Reason::Periodic => "periodic",
            Reason::ResyncAt => "resync_at",
            Reason::ErrorRetry => "error_retry",
            Reason::Request => "request",
            Reason::AfterUpgrade => "after_upgrade",
        }
    }
}

/// When to resync next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextResync {
    /// Seconds from now.
    pub delay: u64,
    /// Why.
    pub reason: Reason,
}

/// The first resync after boot: a random delay up to `Resync_Random_Delay` when `Resync_On_Reset` is on.
pub fn after_boot(p: &ResyncParameters, rng: &mut dyn Random) -> Option<NextResync> {
    p.on_reset.then(|| NextResync { delay: rng.up_to(p.random_delay), reason: Reason::Boot })
}

/// The next resync after an attempt. `failures` counts consecutive failed attempts (0 after a success);
/// `successes` counts consecutive successful periodic resyncs (selects the element of a list `Resync_Periodic`);
/// `now` is the local time of day, for `Resync_At`.
pub fn next_resync(
    p: &ResyncParameters,
    failures: u32,
    successes: u32,
    now: TimeOfDay,
    rng: &mut dyn Random,
) -> Option<NextResync> {
    if failures > 0
        && let Some(delay) = p.error_retry.delay(failures as usize - 1, rng)
    {
        return Some(NextResync { delay, reason: Reason::ErrorRetry });
    }
    if let Some(at) = p.at {
        let day = 86_400;
        let until = (u64::from(at.seconds) + day - u64::from(now.seconds % 86_400)) % day;
        let until = if until == 0 { day } else { until };
        let extra = rng.up_to(p.at_random_delay);
        return Some(NextResync { delay: until + extra, reason: Reason::ResyncAt });
    }
    p.periodic.delay(successes as usize, rng).map(|delay| NextResync { delay, reason: Reason::Periodic })
}

/// The delay before retrying a failed upgrade (`failures` ≥ 1), or `None` when no retry is scheduled.
pub fn upgrade_retry(p: &ResyncParameters, failures: u32, rng: &mut dyn Random) -> Option<u64> {
    if failures == 0 {
        return None;
    }
    p.upgrade_retry.delay(failures as usize - 1, rng)
}

/// Whether a due resync may run: "the triggers, if set, will prevent resync unless one or more triggers evaluates to
/// true". Triggers are bare conditions (no `( )?`), macro-expanded.
pub fn triggers_allow(p: &ResyncParameters, vars: &Variables) -> Result<bool, ParameterError> {
    let mut any_set = false;
    for (i, trigger) in p.triggers.iter().enumerate() {
        if trigger.trim().is_empty() {
            continue;
        }
        any_set = true;
        let e = condition::evaluate(trigger, vars)
            .map_err(|error| ParameterError { parameter: format!("Resync_Trigger_{}", i + 1), error })?;
        if e.holds {
            return Ok(true);
        }
    }
    Ok(!any_set)
}

/// How long a due resync may wait for the lines to go idle before it happens anyway (`Forced_Resync_Delay`).
pub fn forced_after(p: &ResyncParameters) -> u64 {
    p.forced_delay
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generator that always returns its maximum, to check bounds.
    struct Max;
    impl Random for Max {
        fn up_to(&mut self, max: u64) -> u64 {
            max
        }
    }

    fn params(pairs: &[(&str, &str)]) -> ResyncParameters {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ResyncParameters::from_parameters(|n| map.get(n).cloned()).unwrap()
    }

    const NOON: TimeOfDay = TimeOfDay { seconds: 12 * 3600 };

    /// 003 *Configurable Schedules*, example 1.
    #[test]
    fn configurable_schedules_example_1() {
        let p = params(&[("Resync_Periodic", "7200"), ("Resync_Error_Retry_Delay", "1800,3600,7200,14400")]);
        let mut r = SplitMix64(1);
        assert_eq!(next_resync(&p, 0, 0, NOON, &mut r), Some(NextResync { delay: 7200, reason: Reason::Periodic }));
        let retries: Vec<u64> = (1..=6).map(|f| next_resync(&p, f, 0, NOON, &mut r).unwrap().delay).collect();
        assert_eq!(retries, [1800, 3600, 7200, 14400, 14400, 14400]);
    }

    /// 003 *Configurable Schedules*, example 2: random extras stay within bounds.
    #[test]
    fn configurable_schedules_example_2() {
        let p = params(&[("Resync_Periodic", "3600+600"), ("Resync_Error_Retry_Delay", "1800+300,3600+600,7200+900")]);
        let mut r = SplitMix64(7);
        for _ in 0..1000 {
            let d = next_resync(&p, 0, 0, NOON, &mut r).unwrap().delay;
            assert!((3600..=4200).contains(&d), "{d}");
            let d = next_resync(&p, 5, 0, NOON, &mut r).unwrap().delay;
            assert!((7200..=8100).contains(&d), "{d}");
        }
        assert_eq!(next_resync(&p, 2, 0, NOON, &mut Max).unwrap().delay, 4200);
    }

    /// 003 *Configurable Schedules*, example 3.
    #[test]
    fn configurable_schedules_example_3() {
        let p = params(&[("Upgrade_Error_Retry_Delay", "1800,3600,7200,14400+3600")]);
        let d: Vec<u64> = (1..=4).map(|f| upgrade_retry(&p, f, &mut Max).unwrap()).collect();
        assert_eq!(d, [1800, 3600, 7200, 18000]);
        assert_eq!(upgrade_retry(&p, 9, &mut SplitMix64(3)).map(|d| (14400..=18000).contains(&d)), Some(true));
        assert_eq!(upgrade_retry(&p, 0, &mut Max), None);
    }

    /// 003 *Triggers*: empty Resync_Periodic means no periodic resync; retry delay 0 means no retry.
    #[test]
    fn empty_and_zero_disable() {
        let p = params(&[("Resync_Periodic", ""), ("Resync_Error_Retry_Delay", "0")]);
        assert_eq!(next_resync(&p, 0, 0, NOON, &mut Max), None);
        assert_eq!(next_resync(&p, 3, 0, NOON, &mut Max), None);
        let p = params(&[("Resync_Error_Retry_Delay", "0")]);
        assert_eq!(next_resync(&p, 1, 0, NOON, &mut Max), Some(NextResync { delay: 3600, reason: Reason::Periodic }));
    }

    /// 003 *Resync at a Specific Time*: 1000 → between 10:00 and 10:10, overriding Resync_Periodic.
    #[test]
    fn resync_at_specific_time() {
        let p = params(&[("Resync_At", "1000"), ("Resync_At_Random_Delay", "600"), ("Resync_Periodic", "60")]);
        let nine = TimeOfDay { seconds: 9 * 3600 };
        let mut r = SplitMix64(11);
        for _ in 0..100 {
            let n = next_resync(&p, 0, 0, nine, &mut r).unwrap();
            assert_eq!(n.reason, Reason::ResyncAt);
            assert!((3600..=4200).contains(&n.delay), "{}", n.delay);
        }
        let eleven = TimeOfDay { seconds: 11 * 3600 };
        assert_eq!(next_resync(&p, 0, 0, eleven, &mut Max).unwrap().delay, 23 * 3600 + 600);
        assert_eq!(next_resync(&p, 0, 0, TimeOfDay { seconds: 10 * 3600 }, &mut Max).unwrap().delay, 86_400 + 600);
        // A failure still retries on the error schedule.
        assert_eq!(next_resync(&p, 1, 0, nine, &mut Max).unwrap().reason, Reason::ErrorRetry);
    }

    /// 003 *Enable Parameters*: Resync_On_Reset with a random delay up to Resync_Random_Delay.
    #[test]
    fn boot_resync() {
        let p = params(&[("Resync_Random_Delay", "120")]);
        let mut r = SplitMix64(5);
        for _ in 0..100 {
            let n = after_boot(&p, &mut r).unwrap();
            assert!(n.delay <= 120 && n.reason == Reason::Boot);
        }
        assert_eq!(after_boot(&params(&[("Resync_On_Reset", "No")]), &mut r), None);
    }

    #[test]
    fn periodic_lists_advance_with_successes() {
        let p = params(&[("Resync_Periodic", "600,1200,300")]);
        let d: Vec<u64> = (0..5).map(|s| next_resync(&p, 0, s, NOON, &mut Max).unwrap().delay).collect();
        assert_eq!(d, [600, 1200, 300, 300, 300]);
    }

    /// 003 *Triggers*: triggers prevent a due resync unless one holds.
    #[test]
    fn triggers() {
        let mut v = Variables::new();
        v.set("UPGTMR", "400").set("PRVTMR", "700");
        assert!(triggers_allow(&params(&[]), &v).unwrap(), "no triggers: allowed");
        let p = params(&[("Resync_Trigger_1", "$UPGTMR gt 300 and $PRVTMR ge 600")]);
        assert!(triggers_allow(&p, &v).unwrap());
        v.set("PRVTMR", "10");
        assert!(!triggers_allow(&p, &v).unwrap());
        let p = params(&[("Resync_Trigger_1", "$PRVTMR ge 600"), ("Resync_Trigger_2", "$UPGTMR gt 300")]);
        assert!(triggers_allow(&p, &v).unwrap(), "either trigger is enough");
        let p = params(&[("Resync_Trigger_2", "$PRVTMR ge")]);
        assert_eq!(triggers_allow(&p, &v).unwrap_err().parameter, "Resync_Trigger_2");
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = ResyncParameters::from_parameters(|n| (n == "Resync_Periodic").then(|| "1h".to_string())).unwrap_err();
        assert_eq!(e.parameter, "Resync_Periodic");
        let e = ResyncParameters::from_parameters(|n| (n == "Resync_At").then(|| "2500".to_string())).unwrap_err();
        assert_eq!(e.parameter, "Resync_At");
        assert_eq!(Schedule::parse("1800, 36x0").unwrap_err().column, 7);
    }
}
