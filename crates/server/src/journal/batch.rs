//! What a batch of journal entries changes, worked out once for every database: each device's state once per batch
//! (its last request, and the last file it was served, only when it changed or every 10 s), then its events and
//! reports. The SQLite and PostgreSQL journals only execute the plan.

use super::{AuditEntry, stored_params, stored_report};
use crate::inventory::Mac;
use crate::inventory::at_rest::AtRest;

/// What the writer last wrote of a device's state, so a phone fetching the same file again and again costs an
/// audit row, not a state update each time.
pub(super) struct Written {
    seen_ms: i64,
    address: String,
    served: (String, &'static str, std::sync::Arc<str>),
    served_ms: i64,
}

/// What the writer last wrote, per device (hashbrown with foldhash: a lookup per device per batch).
pub(super) type WrittenStates = hashbrown::HashMap<Mac, Written>;

/// How stale `last seen` and `served at` may get while nothing else about them changes.
const STATE_REFRESH_MS: i64 = 10_000;

/// A device's `last seen` row.
pub(super) struct SeenRow<'a> {
    pub mac: &'a Mac,
    pub at_ms: i64,
    pub address: &'a str,
    pub user_agent: Option<&'a str>,
    pub firmware: Option<&'a str>,
}

/// A device's `served` columns.
pub(super) struct ServedRow<'a> {
    pub mac: &'a Mac,
    pub file: &'a str,
    pub protocol: &'static str,
    pub hash: &'a str,
    pub at_ms: i64,
    /// The parameters served, as stored (passwords fingerprinted), when they changed: the JSON object of the device's
    /// own (or all) parameters, and the id of the shared layer it extends ([`crate::render::merge_served`]).
    pub params: Option<(String, Option<&'a str>)>,
}

/// A report: its row and the parameters merged into the device's last report.
pub(super) struct ReportRow<'a> {
    pub mac: &'a Mac,
    pub at_ms: i64,
    pub name: &'a str,
    pub body: Vec<u8>,
    pub params: String,
}

/// What one batch writes.
#[derive(Default)]
pub(super) struct Plan<'a> {
    pub seen: Vec<SeenRow<'a>>,
    pub served: Vec<ServedRow<'a>>,
    pub events: Vec<(&'a Mac, i64, &'static str, &'a str)>,
    /// Shared layers of served parameters the `served` rows name: (id, JSON), each once.
    pub layers: Vec<(&'a str, &'a str)>,
    pub reports: Vec<ReportRow<'a>>,
}

impl Plan<'_> {
    /// Whether the batch changes nothing (a phone fetching the same file again within 10 s).
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty() && self.served.is_empty() && self.events.is_empty() && self.reports.is_empty()
    }
}

/// The plan for `batch`, given what was `written` before (updated as if the plan were carried out).
pub(super) fn plan<'a>(batch: &'a [AuditEntry], written: &mut WrittenStates, at_rest: &AtRest) -> Plan<'a> {
    if written.len() > 1_000_000 {
        written.clear();
    }
    struct Seen<'a> {
        last: &'a AuditEntry,
        user_agent: Option<&'a str>,
        firmware: Option<&'a str>,
        served: Option<&'a AuditEntry>,
        served_params: Option<&'a crate::render::ServedParams>,
    }
    let mut seen: hashbrown::HashMap<&Mac, Seen<'_>> = hashbrown::HashMap::with_capacity(batch.len().min(1024));
    for e in batch {
        let Some(mac) = &e.device else { continue };
        // An administrator changing a device is not the device being seen (its events are kept below).
        if e.protocol == super::ADMIN_PROTOCOL {
            continue;
        }
        let s = seen.entry(mac).or_insert(Seen {
            last: e,
            user_agent: None,
            firmware: None,
            served: None,
            served_params: None,
        });
        s.last = e;
        s.user_agent = e.user_agent.as_deref().or(s.user_agent);
        s.firmware = e.firmware.as_deref().or(s.firmware);
        if e.status == 200 && matches!(e.method, "GET" | "RRQ") {
            s.served = Some(e);
            s.served_params = e.served_params.as_deref().or(s.served_params);
        }
    }
    // In MAC order, so that two nodes writing the same devices take their rows in the same order (PostgreSQL).
    let mut seen: Vec<(&Mac, Seen<'_>)> = seen.into_iter().collect();
    seen.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut plan = Plan::default();
    for (mac, s) in seen {
        let address = s.last.client.rsplit_once(':').map_or(s.last.client.as_str(), |(a, _)| a);
        // The MAC is copied only for a device not seen before.
        if !written.contains_key(mac) {
            let new = Written {
                seen_ms: i64::MIN,
                address: String::new(),
                served: (String::new(), "", Default::default()),
                served_ms: i64::MIN,
            };
            written.insert(mac.clone(), new);
        }
        let Some(w) = written.get_mut(mac) else { continue };
        let state_changed = w.address != address || s.user_agent.is_some() || s.firmware.is_some();
        if state_changed || s.last.at_ms - w.seen_ms >= STATE_REFRESH_MS {
            w.seen_ms = s.last.at_ms;
            w.address = address.to_string();
            plan.seen.push(SeenRow {
                mac,
                at_ms: s.last.at_ms,
                address,
                user_agent: s.user_agent,
                firmware: s.firmware,
            });
        }
        let served = s.served.filter(|e| {
            let (file, protocol, hash) = &w.served;
            (file, *protocol, hash) != (&e.file, e.protocol, &e.hash) || e.at_ms - w.served_ms >= STATE_REFRESH_MS
        });
        if let Some(e) = served {
            let params = if *w.served.2 == *e.hash { None } else { s.served_params };
            w.served = (e.file.clone(), e.protocol, e.hash.clone());
            w.served_ms = e.at_ms;
            plan.served.push(ServedRow {
                mac,
                file: &e.file,
                protocol: e.protocol,
                hash: &e.hash,
                at_ms: e.at_ms,
                params: params.map(|p| {
                    let (layer, rest) = p.parts();
                    let layer = layer.map(|l| l.stored(|json| stored_params(at_rest, json).into_owned()));
                    if let Some(l) = layer
                        && !plan.layers.contains(&l)
                    {
                        plan.layers.push(l);
                    }
                    (stored_params(at_rest, &rest).into_owned(), layer.map(|(id, _)| id))
                }),
            });
        }
    }
    for e in batch {
        let Some(mac) = &e.device else { continue };
        if let Some((kind, text)) = &e.event {
            plan.events.push((mac, e.at_ms, kind, text));
        }
        if let Some((params, body)) = &e.report {
            plan.reports.push(ReportRow {
                mac,
                at_ms: e.at_ms,
                name: &e.file,
                body: stored_report(at_rest, mac, e.at_ms, body),
                params: stored_params(at_rest, params).into_owned(),
            });
        }
    }
    plan
}
