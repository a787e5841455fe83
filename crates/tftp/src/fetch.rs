//! The TFTP client on tokio, driving [`ReadClient`](crate::client::ReadClient): for the phone simulator, the CLI
//! and the tests.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::Machine;
use crate::client::{ClientConfig, ClientError, ReadClient, WriteClient};
use crate::packet::{self, ErrorCode};

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The protocol failed (server error, negotiation, time-out).
    #[error(transparent)]
    Protocol(#[from] ClientError),
    /// A socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The result of a download.
#[derive(Debug, Clone)]
pub struct Download {
    /// The content.
    pub data: Vec<u8>,
    /// The negotiated block size.
    pub blksize: usize,
    /// The negotiated window.
    pub windowsize: u64,
    /// The size the server announced with `tsize`.
    pub tsize: Option<u64>,
}

crate::machine!(ReadClient);
crate::machine!(WriteClient);

/// Runs a transfer with `server` to its end; `after_send` sees the client after each round of sends.
async fn run<T: Machine>(server: SocketAddr, c: &mut T, mut after_send: impl FnMut(&mut T)) -> io::Result<()> {
    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }.expect("literal");
    let socket = UdpSocket::bind(bind).await?;
    let mut peer: Option<SocketAddr> = None;
    let mut out = Vec::with_capacity(600);
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        while c.poll_transmit(now, &mut out) {
            // The request goes to the listening port; everything after it to the transfer's own port (its TID).
            socket.send_to(&out, peer.unwrap_or(server)).await?;
            out.clear();
        }
        after_send(c);
        if c.is_finished() {
            return Ok(());
        }
        let Some(deadline) = c.poll_timeout() else { return Ok(()) };
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (len, from) = match r {
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                    Err(e) => return Err(e),
                };
                match peer {
                    None if from.ip() == server.ip() || server.ip().is_unspecified() => peer = Some(from),
                    Some(p) if p == from => {}
                    _ => {
                        let mut err = Vec::new();
                        packet::encode_error(&mut err, ErrorCode::UnknownTransferId, "Unknown transfer ID");
                        let _ = socket.send_to(&err, from).await;
                        continue;
                    }
                }
                c.handle(&buf[..len], Instant::now());
            }
            _ = tokio::time::sleep_until(deadline.into()) => c.handle_timeout(Instant::now()),
        }
    }
}

/// Downloads `filename` from the server at `server`.
pub async fn download(server: SocketAddr, filename: &str, config: ClientConfig) -> Result<Download, FetchError> {
    let mut c = ReadClient::new(filename, config);
    let mut data = Vec::new();
    run(server, &mut c, |c| data.extend(c.take_data())).await?;
    data.extend(c.take_data());
    match c.result() {
        Some(Ok(_)) => Ok(Download { data, blksize: c.blksize(), windowsize: c.windowsize(), tsize: c.tsize() }),
        Some(Err(e)) => Err(e.clone().into()),
        None => Err(ClientError::TimedOut.into()),
    }
}

/// Uploads `data` as `filename` to the server at `server` (a write request); returns the block size used.
pub async fn upload(
    server: SocketAddr,
    filename: &str,
    data: &[u8],
    config: ClientConfig,
) -> Result<usize, FetchError> {
    let mut c = WriteClient::new(filename, data, config);
    run(server, &mut c, |_| {}).await?;
    match c.result() {
        Some(Ok(_)) => Ok(c.blksize()),
        Some(Err(e)) => Err(e.clone().into()),
        None => Err(ClientError::TimedOut.into()),
    }
}
