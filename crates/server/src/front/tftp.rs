//! The TFTP front end: read requests go to [`Provisioner::handle`], `Report_Rule` uploads (write requests to a
//! report path) too; the transfer itself is `provisor_tftp`'s service.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use provisor_tftp::content::{Content, ContentSource, FileContent, Refusal, Request as TftpRequest};
use provisor_tftp::service::ServiceConfig;

use crate::config::Config;
use crate::inventory::Store;
use crate::journal::Journal;
use crate::provision::{Body, Protocol, Provisioner, Request};

/// TFTP requests go to the provisioner, which is built after every port is bound.
pub struct TftpFront<S: Store, J: Journal>(pub Arc<OnceLock<Arc<Provisioner<S, J>>>>);

struct BytesContent(bytes::Bytes);

impl Content for BytesContent {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = (offset as usize).min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

impl<S: Store + 'static, J: Journal> ContentSource for TftpFront<S, J> {
    fn open(&self, request: &TftpRequest) -> impl Future<Output = Result<Arc<dyn Content>, Refusal>> + Send {
        let provisioner = self.0.get().cloned();
        let (filename, client) = (request.filename.clone(), request.client);
        async move {
            let Some(p) = provisioner else { return Err(Refusal::access("starting")) };
            let started = std::time::Instant::now();
            let response = p.handle(Request::get(Protocol::Tftp, &filename, client), SystemTime::now()).await;
            crate::metrics::request_latency("tftp", started.elapsed());
            if let Some((code, message)) = response.tftp_error() {
                return Err(Refusal { code, message });
            }
            match response.body {
                Body::Bytes(b) => Ok(Arc::new(BytesContent(b)) as Arc<dyn Content>),
                Body::File(path, _) => {
                    FileContent::open(&path).map(|f| Arc::new(f) as Arc<dyn Content>).map_err(|_| Refusal::not_found())
                }
            }
        }
    }

    /// `Report_Rule` uploads to a TFTP URL (`tftp://host/report/$MA.xml`) are write requests.
    fn accepts_upload(&self, request: &TftpRequest) -> Option<u64> {
        self.0.get()?.takes_upload(&request.filename)
    }

    fn store(&self, request: &TftpRequest, data: Vec<u8>) -> impl Future<Output = Result<(), Refusal>> + Send {
        let provisioner = self.0.get().cloned();
        let (filename, client) = (request.filename.clone(), request.client);
        async move {
            let Some(p) = provisioner else { return Err(Refusal::access("starting")) };
            let mut req = Request::get(Protocol::Tftp, &filename, client);
            req.method = "WRQ";
            req.body = data.into();
            let response = p.handle(req, SystemTime::now()).await;
            match response.tftp_error() {
                Some((code, message)) => Err(Refusal { code, message }),
                None => Ok(()),
            }
        }
    }
}

/// The TFTP service's limits from `[tftp]`.
pub fn service_config(config: &Config) -> ServiceConfig {
    let mut c = ServiceConfig {
        max_sessions: config.tftp.max_sessions,
        max_sessions_per_address: config.tftp.max_sessions_per_address,
        // The random path of `/profile/<random>/...` is half of a device's secret: never in the log.
        log_name: crate::journal::mask_path_tokens,
        ..ServiceConfig::default()
    };
    c.transfer.max_stall = std::time::Duration::from_secs(config.tftp.max_stall_s);
    c
}
