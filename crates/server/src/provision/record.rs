//! What the core records behind every answer: the audit entry (with the outcome's device, served parameters, event
//! and report), the request counters, the failed-lookup count of a refusal, and syslog lines for known devices.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use super::request::{Body, Outcome, ProvisionError, Request, Response};
use super::{Provisioner, seal, unix_ms};
use crate::identity::Claims;
use crate::inventory::{Mac, Store};
use crate::journal::{AuditEntry, Journal};

impl<S: Store, J: Journal> Provisioner<S, J> {
    /// What a refusal adds to the outcome: the failed-lookup count, and the device's history.
    /// A `verified` client's failures are its own (logged on its device), never counted against its address.
    pub(super) fn note_failure(&self, e: &ProvisionError, ip: IpAddr, now: i64, verified: bool, out: &mut Outcome) {
        if e.failed_lookup() && !verified {
            self.guard.failed(ip, now);
        }
        match e {
            ProvisionError::OtherDevice { certificate, .. } => {
                // The random path is half of a device's secret: masked in the server's log (the audit log has it).
                tracing::warn!("refused: {}", crate::journal::mask_path_tokens(&e.to_string()));
                out.device.clone_from(certificate);
                out.event = Some(("refused", e.to_string()));
            }
            ProvisionError::UnknownDevice(_) | ProvisionError::NoEnterprisePhone(_) => out.device = None,
            ProvisionError::PlainReport(_) => out.event = Some(("refused", e.to_string())),
            ProvisionError::BadReport { .. } => out.event = Some(("error", e.to_string())),
            ProvisionError::Render(_) | ProvisionError::Templates(_) | ProvisionError::Enrol(..) => {
                tracing::error!("{e}");
                out.event = Some(("error", e.to_string()));
            }
            _ => {}
        }
    }

    /// Counts the request and queues its audit entry.
    pub(super) async fn record(&self, req: Request, ua: Option<Claims>, now: i64, response: &Response, out: Outcome) {
        let hash: Arc<str> = match (&response.hash, &response.body) {
            (Some(h), _) => h.clone(),
            (None, Body::Bytes(b)) if response.status == 200 && !b.is_empty() => {
                use sha2::Digest as _;
                seal::hex(&sha2::Sha256::digest(b)).into()
            }
            _ => Arc::default(),
        };
        crate::metrics::request_answered(req.protocol.name(), response.status);
        if matches!(response.error, Some(ProvisionError::Limited(_))) {
            metrics::counter!("provisor_rate_limited_total", "protocol" => req.protocol.name()).increment(1);
        }
        self.journal
            .record(AuditEntry {
                at_ms: now,
                client: crate::log_line::address_text(&req.client),
                device: out.device,
                protocol: req.protocol.name(),
                method: req.method,
                file: req.path,
                status: response.status,
                bytes: response.body.len(),
                hash,
                // A taking of secrets is named in the audit line too.
                note: match (&out.event, response.note(), &out.form) {
                    (Some(("secrets", text)), note, _) if note.is_empty() => text.clone(),
                    (_, note, Some(form)) if note.is_empty() => form.clone(),
                    (_, note, _) => note,
                },
                user_agent: req.user_agent,
                firmware: ua.and_then(|c| c.firmware),
                served_params: out.served_params,
                event: out.event,
                report: out.report,
            })
            .await;
    }

    /// Records a syslog line (or another event) for a device at `now`. Lines for devices not in the inventory, and
    /// lines over `[limits] device_events_per_minute`, are dropped (and counted): anyone can send syslog datagrams.
    pub async fn record_event(
        &self,
        client: SocketAddr,
        device: Option<Mac>,
        kind: &'static str,
        text: String,
        now: SystemTime,
    ) {
        let now = unix_ms(now);
        let Some(mac) = device else {
            metrics::counter!("provisor_events_dropped_total", "why" => "no device").increment(1);
            return;
        };
        if !matches!(self.store.device(&mac).await, Ok(Some(_))) {
            metrics::counter!("provisor_events_dropped_total", "why" => "unknown device").increment(1);
            return;
        }
        if self.guard.device_event(&mac, now).is_err() {
            metrics::counter!("provisor_events_dropped_total", "why" => "rate").increment(1);
            return;
        }
        let entry = AuditEntry {
            at_ms: now,
            client: crate::log_line::address_text(&client),
            device: Some(mac),
            protocol: "syslog",
            method: "LOG",
            event: Some((kind, text)),
            ..AuditEntry::default()
        };
        self.journal.record(entry).await;
    }
}
