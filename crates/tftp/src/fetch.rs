//! The TFTP client on tokio, driving [`ReadClient`](crate::client::ReadClient): for the phone simulator, the CLI
//! and the tests.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

use crate::Machine;
use crate::client::{ClientConfig, ClientError, ReadClient, WriteClient};
use crate::socket::{Peer, drive};

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

/// Runs a transfer with `server` to its end, from a socket of its own; `after_send` sees the client after each
/// round of sends.
async fn run<T: Machine>(server: SocketAddr, c: &mut T, after_send: impl FnMut(&mut T)) -> io::Result<()> {
    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }.expect("literal");
    let socket = UdpSocket::bind(bind).await?;
    let mut out = Vec::with_capacity(600);
    drive(&socket, Peer::Learn(server), c, &mut out, 65535, None, after_send).await
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
