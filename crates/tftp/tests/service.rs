//! The tokio server shell on loopback: foreign TIDs, the session cap, refused requests, and the client shell.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use provisor_tftp::client::ClientConfig;
use provisor_tftp::content::{Content, ContentSource, Refusal, Request};
use provisor_tftp::fetch::download;
use provisor_tftp::packet::{self, ErrorCode, Packet};
use provisor_tftp::server::ServerConfig;
use provisor_tftp::service::{Service, ServiceConfig};
use tokio::net::UdpSocket;

/// A source that renders per-request content, like the provisioning server will.
struct Rendered;

impl ContentSource for Rendered {
    async fn open(&self, r: &Request) -> Result<Arc<dyn Content>, Refusal> {
        match r.filename.trim_start_matches('/') {
            "missing" => Err(Refusal::not_found()),
            name => Ok(Arc::new(
                format!("<flat-profile><!-- {name} for {} --></flat-profile>", r.client.ip()).repeat(40).into_bytes(),
            )),
        }
    }
}

async fn start(config: ServiceConfig) -> SocketAddr {
    let service = Service::bind("127.0.0.1:0".parse().unwrap(), Rendered, config).await.unwrap();
    let addr = service.local_addr().unwrap();
    tokio::spawn(service.run());
    addr
}

async fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 70000];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf)).await.expect("reply").unwrap();
    buf.truncate(n);
    (buf, from)
}

fn rrq(name: &str, mode: &str, options: &[(&str, String)]) -> Vec<u8> {
    let mut v = Vec::new();
    packet::encode_request(&mut v, false, name, mode, options);
    v
}

#[tokio::test]
async fn dynamic_content_and_the_client_shell() {
    let addr = start(ServiceConfig::default()).await;
    let d = download(
        addr,
        "/SEP001122334455.cnf.xml",
        ClientConfig { blksize: Some(1468), windowsize: Some(4), ..ClientConfig::default() },
    )
    .await
    .unwrap();
    let text = String::from_utf8(d.data).unwrap();
    assert!(text.starts_with("<flat-profile><!-- SEP001122334455.cnf.xml for 127.0.0.1 -->"));
    assert_eq!(d.tsize, Some(text.len() as u64));
    assert_eq!((d.blksize, d.windowsize), (1468, 4));
    let e = download(addr, "missing", ClientConfig::default()).await.unwrap_err();
    assert!(e.to_string().contains("server error 1"), "{e}");
}

#[tokio::test]
async fn a_foreign_tid_gets_error_5_and_the_transfer_goes_on() {
    let addr = start(ServiceConfig::default()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(&rrq("a.cfg", "octet", &[]), addr).await.unwrap();
    let (first, tid) = recv(&client).await;
    assert!(matches!(Packet::decode(&first).unwrap(), Packet::Data { block: 1, .. }));
    assert_ne!(tid, addr, "the transfer runs on its own port");
    let intruder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut ack = Vec::new();
    packet::encode_ack(&mut ack, 1);
    intruder.send_to(&ack, tid).await.unwrap();
    let (err, _) = recv(&intruder).await;
    assert_eq!(Packet::decode(&err).unwrap(), Packet::Error { code: 5, message: "Unknown transfer ID".into() });
    // The real client carries on.
    let mut block = 1u16;
    loop {
        packet::encode_ack(&mut ack, block);
        client.send_to(&ack, tid).await.unwrap();
        let (d, _) = recv(&client).await;
        let Packet::Data { block: b, data } = Packet::decode(&d).unwrap() else { panic!() };
        assert_eq!(b, block + 1);
        block = b;
        if data.len() < 512 {
            packet::encode_ack(&mut ack, block);
            client.send_to(&ack, tid).await.unwrap();
            break;
        }
    }
}

#[tokio::test]
async fn refused_requests() {
    let addr = start(ServiceConfig::default()).await;
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut wrq = Vec::new();
    packet::encode_request(&mut wrq, true, "upload.bin", "octet", &[]);
    for (request, code) in [
        (wrq, ErrorCode::AccessViolation),
        (rrq("a", "mail", &[]), ErrorCode::IllegalOperation),
        (rrq("a", "netascii", &[("tsize", "0".into())]), ErrorCode::OptionNegotiation),
        (rrq("a", "octet", &[("blksize", "4".into())]), ErrorCode::OptionNegotiation),
        (rrq("a", "octet", &[("timeout", "0".into())]), ErrorCode::OptionNegotiation),
        (rrq("missing", "octet", &[]), ErrorCode::FileNotFound),
    ] {
        s.send_to(&request, addr).await.unwrap();
        let (reply, _) = recv(&s).await;
        let Packet::Error { code: got, .. } = Packet::decode(&reply).unwrap() else { panic!("{reply:?}") };
        assert_eq!(got, code as u16);
    }
}

/// A full table makes room by dropping the oldest transfer whose client never answered (a spoofed or abandoned
/// request); transfers whose clients answer are never dropped, and then "Server busy" is the answer.
#[tokio::test]
async fn a_full_table_drops_unanswered_sessions_first_and_refuses_cleanly() {
    let config = ServiceConfig {
        max_sessions: 1,
        transfer: ServerConfig { timeout: Duration::from_secs(1), retries: 1, ..ServerConfig::default() },
        ..ServiceConfig::default()
    };
    let addr = start(config).await;
    let first = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    first.send_to(&rrq("a", "octet", &[]), addr).await.unwrap();
    let _ = recv(&first).await; // DATA 1; never acknowledged
    let second = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    second.send_to(&rrq("b", "octet", &[]), addr).await.unwrap();
    let (reply, tid) = recv(&second).await;
    assert!(matches!(Packet::decode(&reply).unwrap(), Packet::Data { block: 1, .. }), "the silent session made room");
    // The second client answers: its session is live and is not dropped for a third.
    let mut ack = Vec::new();
    packet::encode_ack(&mut ack, 1);
    second.send_to(&ack, tid).await.unwrap();
    let _ = recv(&second).await; // DATA 2
    let third = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    third.send_to(&rrq("c", "octet", &[]), addr).await.unwrap();
    let (reply, from) = recv(&third).await;
    assert_eq!(from, addr);
    assert!(
        matches!(Packet::decode(&reply).unwrap(), Packet::Error { code: 0, ref message } if message.contains("busy"))
    );
    // Once the second transfer gives up (1 s, then 2 s after one retransmission), requests are served again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let d = download(addr, "c", ClientConfig::default()).await.unwrap();
    assert!(!d.data.is_empty());
}

#[tokio::test]
async fn one_address_cannot_take_every_session() {
    let config = ServiceConfig {
        max_sessions_per_address: 2,
        transfer: ServerConfig { max_stall: Duration::from_secs(2), ..ServerConfig::default() },
        ..ServiceConfig::default()
    };
    let addr = start(config).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&rrq("a", "octet", &[]), addr).await.unwrap();
        assert!(matches!(Packet::decode(&recv(&s).await.0).unwrap(), Packet::Data { .. }));
        held.push(s);
    }
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(&rrq("a", "octet", &[]), addr).await.unwrap();
    let (reply, _) = recv(&s).await;
    assert!(
        matches!(Packet::decode(&reply).unwrap(), Packet::Error { code: 0, ref message } if message.contains("busy"))
    );
    // Another address is still served.
    let other = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    other.send_to(&rrq("a", "octet", &[]), addr).await.unwrap();
    assert!(matches!(Packet::decode(&recv(&other).await.0).unwrap(), Packet::Data { .. }));
}

/// A client asking for `timeout=255` and never answering is dropped at the stall limit, not after 6 × 255 s.
#[tokio::test]
async fn a_long_timeout_cannot_hold_a_session() {
    let config = ServiceConfig {
        max_sessions: 1,
        transfer: ServerConfig { max_stall: Duration::from_secs(2), ..ServerConfig::default() },
        ..ServiceConfig::default()
    };
    let service = Service::bind("127.0.0.1:0".parse().unwrap(), Rendered, config).await.unwrap();
    let (addr, sessions) = (service.local_addr().unwrap(), service.sessions());
    tokio::spawn(service.run());
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(&rrq("a", "octet", &[("timeout", "255".into())]), addr).await.unwrap();
    assert!(matches!(Packet::decode(&recv(&s).await.0).unwrap(), Packet::Oack { .. }));
    assert_eq!(sessions.len(), 1);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(sessions.len(), 0, "dropped after max_stall");
}

#[tokio::test]
async fn port_range_is_respected() {
    let config = ServiceConfig {
        port_range: Some((47000, 47009)),
        transfer: ServerConfig { max_stall: Duration::from_secs(2), ..ServerConfig::default() },
        ..ServiceConfig::default()
    };
    let addr = start(config).await;
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(&rrq("a", "octet", &[]), addr).await.unwrap();
    let (_, tid) = recv(&s).await;
    assert!((47000..=47009).contains(&tid.port()), "{tid}");
}
