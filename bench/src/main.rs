//! Measures the profile toolkit's hot paths in-process and prints one `name value unit` line per figure.
//! `bench/run.sh` runs this beside the reference tools and computes ratios. Medians of repeated runs, because the
//! machine is shared and noisy.

/// The same allocator as the `provisor` binary, so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::{Duration, Instant};

use provisor_envelope::openssl_enc::{Digest, Kdf};
use provisor_envelope::{Encryption, WrapSpec, wrap};
use provisor_profile::{ApplyOptions, ParseOptions, PhoneState, Profile};

/// Runs `f` repeatedly for about `budget`, in `rounds` rounds, and returns the median time per call.
fn median_per_call(rounds: usize, budget: Duration, mut f: impl FnMut()) -> Duration {
    // Calibrate: how many calls fit in one round.
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < budget / (rounds as u32 * 4) || calls == 0 {
        f();
        calls += 1;
    }
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                f();
            }
            t.elapsed() / calls
        })
        .collect();
    samples.sort();
    samples[rounds / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("http-once") {
        return http_once(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("hyper-floor") {
        return hyper_floor(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("http1-floor") {
        return http1_floor(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("tftp-load") {
        return tftp_load(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("tftp-phones") {
        return tftp_phones(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("deflate-levels") {
        // gzip time and size of one file at each level, for choosing the server's level.
        let data = std::fs::read(&args[2]).expect("read file");
        for level in [1u32, 2, 3, 4, 6, 9] {
            let size = provisor_envelope::gzip::compress_at(&data, level).len();
            let t = median_per_call(7, Duration::from_secs(1), || {
                black_box(provisor_envelope::gzip::compress_at(black_box(&data), level));
            });
            println!(
                "deflate_level_{level} {:.0} us {size} bytes {:.1} MB/s",
                t.as_secs_f64() * 1e6,
                data.len() as f64 / t.as_secs_f64() / 1e6
            );
        }
        return;
    }
    if args.get(1).map(String::as_str) == Some("sign-rate") {
        return sign_rate(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("parse-apply-once") {
        // For profilers (callgrind, perf): parse + apply only, 20 times or `ROUNDS` times.
        let profile = std::fs::read(&args[2]).expect("read profile");
        let rounds: usize = args.get(3).map_or(20, |r| r.parse().expect("ROUNDS"));
        for _ in 0..rounds {
            let p = Profile::parse(black_box(&profile), &ParseOptions::default()).unwrap();
            black_box(PhoneState::new().apply(&p, &ApplyOptions::default()));
        }
        return;
    }
    let profile_path = args.get(1).expect("usage: provisor-bench PROFILE_1000.xml PROFILE_50K.xml BLOB_1M.bin");
    let profile_50k = args.get(2).expect("second argument: a ~50 KB profile");
    let blob_path = args.get(3).expect("third argument: a 1 MiB file");
    let profile = std::fs::read(profile_path).expect("read profile");
    let options = ParseOptions::default();
    let count = Profile::parse(&profile, &options).expect("profile parses").parameters.len();

    let t = median_per_call(9, Duration::from_secs(3), || {
        let p = Profile::parse(black_box(&profile), &options).unwrap();
        let mut state = PhoneState::new();
        black_box(state.apply(&p, &ApplyOptions::default()));
    });
    let t_parse = median_per_call(9, Duration::from_secs(2), || {
        black_box(Profile::parse(black_box(&profile), &options).unwrap());
    });
    println!("parameters {count} count");
    println!("parse_only_mb_s {:.1} MB/s", profile.len() as f64 / t_parse.as_secs_f64() / 1e6);
    println!("profile_bytes {} bytes", profile.len());
    println!("parse_apply_mb_s {:.1} MB/s", profile.len() as f64 / t.as_secs_f64() / 1e6);
    println!("parse_apply_us {:.1} us", t.as_secs_f64() * 1e6);
    // The same parameters with no name repeated: every element is a first setting and a dictionary lookup.
    if let Some(path) = args.get(4) {
        let distinct = std::fs::read(path).expect("read the distinct-names profile");
        let t = median_per_call(9, Duration::from_secs(2), || {
            let p = Profile::parse(black_box(&distinct), &options).unwrap();
            black_box(PhoneState::new().apply(&p, &ApplyOptions::default()));
        });
        println!("parse_apply_distinct_mb_s {:.1} MB/s", distinct.len() as f64 / t.as_secs_f64() / 1e6);
    }

    let blob = std::fs::read(blob_path).expect("read blob");
    let salt = Some([7u8; 8]);
    let t = median_per_call(9, Duration::from_secs(3), || {
        black_box(provisor_envelope::openssl_enc::encrypt(
            black_box(&blob),
            b"SecretPhrase1234",
            Kdf::BytesToKey(Digest::Sha256),
            salt,
        ));
    });
    println!("aes256cbc_encrypt_mb_s {:.1} MB/s", blob.len() as f64 / t.as_secs_f64() / 1e6);

    let p50 = std::fs::read(profile_50k).expect("read 50K profile");
    let spec = WrapSpec {
        gzip: true,
        encryption: Some(Encryption::AesCbc {
            key: b"SecretPhrase1234".to_vec(),
            kdf: Kdf::BytesToKey(Digest::Sha256),
            salted: true,
        }),
    };
    let t = median_per_call(9, Duration::from_secs(3), || {
        black_box(wrap(black_box(&p50), &spec).unwrap());
    });
    println!("gzip_encrypt_50k_us {:.1} us", t.as_secs_f64() * 1e6);
    println!("profile_50k_bytes {} bytes", p50.len());
}

/// `provisor-bench tftp-load HOST:PORT FILE COUNT [BLKSIZE]`: starts COUNT downloads of FILE at once with
/// Provisor's client and prints the wall time, failures and per-transfer latency percentiles.
fn tftp_load(args: &[String]) {
    use provisor_tftp::client::ClientConfig;
    let server: std::net::SocketAddr = args[0].parse().expect("HOST:PORT");
    let file = args[1].clone();
    let count: usize = args[2].parse().expect("COUNT");
    let blksize: Option<u16> = args.get(3).map(|b| b.parse().expect("BLKSIZE"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let started = Instant::now();
    let results: Vec<(bool, Duration, usize)> = rt.block_on(async {
        let tasks: Vec<_> = (0..count)
            .map(|_| {
                let file = file.clone();
                tokio::spawn(async move {
                    let t = Instant::now();
                    let config = ClientConfig { blksize, retries: 10, ..ClientConfig::default() };
                    let r = provisor_tftp::fetch::download(server, &file, config).await;
                    let len = r.as_ref().map_or(0, |d| d.data.len());
                    (r.is_ok(), t.elapsed(), len)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(count);
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    let wall = started.elapsed();
    let mut latencies: Vec<Duration> = results.iter().map(|r| r.1).collect();
    latencies.sort();
    let failures = results.iter().filter(|r| !r.0).count();
    let bytes: usize = results.iter().map(|r| r.2).sum();
    println!("transfers {count}");
    println!("failures {failures}");
    println!("wall_s {:.3}", wall.as_secs_f64());
    println!("bytes {bytes}");
    println!("p50_ms {:.1}", latencies[count / 2].as_secs_f64() * 1e3);
    println!("p99_ms {:.1}", latencies[(count * 99 / 100).min(count - 1)].as_secs_f64() * 1e3);
}

/// `provisor-bench tftp-phones HOST:PORT PHONES CONCURRENCY [SAVE_DIR]`: PHONES enterprise phones (MACs
/// 000e08000000 + i) each fetch `ITLFile.tlv` then `SEP<MAC>.cnf.xml.sgn` over TFTP, CONCURRENCY at a time; with
/// SAVE_DIR the configs are saved there (to serve the same bytes from another server). Prints wall time and failures.
fn tftp_phones(args: &[String]) {
    use provisor_tftp::client::ClientConfig;
    let server: std::net::SocketAddr = args[0].parse().expect("HOST:PORT");
    let phones: usize = args[1].parse().expect("PHONES");
    let concurrency: usize = args[2].parse().expect("CONCURRENCY");
    let save = args.get(3).map(std::path::PathBuf::from);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let started = Instant::now();
    let (failures, bytes) = rt.block_on(async {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
        let tasks: Vec<_> = (0..phones)
            .map(|i| {
                let (gate, save) = (gate.clone(), save.clone());
                tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await.expect("semaphore");
                    let config = ClientConfig { blksize: Some(1428), retries: 10, ..ClientConfig::default() };
                    let mac = format!("{:012X}", 0x000e_0800_0000u64 + i as u64);
                    let mut got = 0usize;
                    for name in ["ITLFile.tlv".to_string(), format!("SEP{mac}.cnf.xml.sgn")] {
                        match provisor_tftp::fetch::download(server, &name, config.clone()).await {
                            Ok(d) => {
                                got += d.data.len();
                                if let (Some(dir), true) = (&save, name.starts_with("SEP")) {
                                    std::fs::write(dir.join(&name), &d.data).expect("save");
                                }
                            }
                            Err(_) => return (1usize, got),
                        }
                    }
                    (0, got)
                })
            })
            .collect();
        let (mut failures, mut bytes) = (0, 0);
        for t in tasks {
            let (f, b) = t.await.expect("task");
            failures += f;
            bytes += b;
        }
        (failures, bytes)
    });
    println!("phones {phones}");
    println!("failures {failures}");
    println!("bytes {bytes}");
    println!("wall_s {:.3}", started.elapsed().as_secs_f64());
}

/// `provisor-bench sign-rate SIGNER.pem FILE SECONDS`: `.sgn` signatures per second of FILE, in process.
fn sign_rate(args: &[String]) {
    let signer = provisor_trust::Signer::from_pem(&std::fs::read(&args[0]).expect("signer")).expect("signer PEM");
    let content = std::fs::read(&args[1]).expect("file");
    let seconds: f64 = args[2].parse().expect("SECONDS");
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        black_box(
            provisor_trust::signed::sign(&content, &signer, "f.sgn", provisor_trust::Digest::Sha1, n as u32).unwrap(),
        );
        n += 1;
    }
    println!("signs_per_s {:.1}", n as f64 / started.elapsed().as_secs_f64());
}

/// `http-once ADDR URLS_FILE THREADS`: fetches every path in URLS_FILE exactly once over keep-alive HTTP/1.1
/// connections (THREADS of them), so on a freshly started server every request is a cache miss. Prints the rate and
/// latency percentiles.
fn http_once(args: &[String]) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let addr = args[0].clone();
    let paths: Vec<String> =
        std::fs::read_to_string(&args[1]).expect("read URL list").lines().map(str::to_string).collect();
    let threads: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(2);
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let results: Vec<(Vec<Duration>, usize, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut latencies = Vec::new();
                    let (mut failures, mut bytes) = (0usize, 0u64);
                    let stream = std::net::TcpStream::connect(&addr).expect("connect");
                    stream.set_nodelay(true).ok();
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut writer = stream;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else { break };
                        let t = Instant::now();
                        write!(writer, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").expect("send");
                        let (mut status, mut length) = (0u16, 0usize);
                        let mut line = String::new();
                        loop {
                            line.clear();
                            reader.read_line(&mut line).expect("read");
                            let l = line.trim_end();
                            if l.is_empty() {
                                break;
                            }
                            if let Some(rest) = l.strip_prefix("HTTP/1.1 ") {
                                status = rest[..3].parse().unwrap_or(0);
                            } else if let Some((k, v)) = l.split_once(':')
                                && k.eq_ignore_ascii_case("content-length")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0u8; length];
                        reader.read_exact(&mut body).expect("body");
                        latencies.push(t.elapsed());
                        bytes += length as u64;
                        if status != 200 {
                            failures += 1;
                        }
                    }
                    (latencies, failures, bytes)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let wall = start.elapsed();
    let mut all: Vec<Duration> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    all.sort();
    let failures: usize = results.iter().map(|r| r.1).sum();
    let bytes: u64 = results.iter().map(|r| r.2).sum();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    println!("requests {} count", all.len());
    println!("failures {failures} count");
    println!("wall_s {:.3} s", wall.as_secs_f64());
    println!("rate {:.0} req/s", all.len() as f64 / wall.as_secs_f64());
    println!("mean_body {} bytes", bytes / all.len().max(1) as u64);
    println!("p50_ms {:.2} ms", pct(0.50).as_secs_f64() * 1e3);
    println!("p99_ms {:.2} ms", pct(0.99).as_secs_f64() * 1e3);
}

/// The files under `root`, by their path below it (`/a/b.cfg`).
fn files_under(root: &std::path::Path) -> Vec<(String, std::path::PathBuf)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read ROOT") {
            let path = entry.expect("read ROOT").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push((format!("/{}", path.strip_prefix(root).expect("under ROOT").display()), path));
            }
        }
    }
    files
}

/// `provisor-bench http1-floor HOST:PORT ROOT sendfile|writev`: the least an HTTP/1.1 path of its own (no hyper)
/// could cost per cached answer, for the budget of issue 17's item 2 (`bench/server.sh` with `HTTP1_FLOOR=1`). Every
/// GET gets the file under ROOT at its path: its head, then its body `sendfile`d from the page cache as nginx does
/// (`sendfile`), or head and body from memory in one `writev` as hyper does (`writev`). Keep-alive and pipelining,
/// nothing else: no timeouts, no limits, no Provisor work. Not a server to use: a measurement.
fn http1_floor(args: &[String]) {
    use std::collections::HashMap;
    use std::os::fd::AsRawFd as _;
    use std::sync::Arc;
    let addr: std::net::SocketAddr = args[0].parse().expect("HOST:PORT");
    let sendfile = match args.get(2).map(String::as_str) {
        Some("sendfile") => true,
        Some("writev") => false,
        _ => panic!("http1-floor HOST:PORT ROOT sendfile|writev"),
    };
    let mut files = HashMap::new();
    for (name, path) in files_under(std::path::Path::new(&args[1])) {
        let file = std::fs::File::open(&path).expect("open a file");
        let body = std::fs::read(&path).expect("read a file");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        files.insert(name, (head.into_bytes(), body, file));
    }
    let files = Arc::new(files);
    serve_connections(addr, move |stream| {
        let files = files.clone();
        async move {
            let mut buf = Vec::with_capacity(8192);
            loop {
                // Every complete request in the buffer, in order.
                loop {
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut req = httparse::Request::new(&mut headers);
                    let n = match req.parse(&buf) {
                        Ok(httparse::Status::Complete(n)) => n,
                        Ok(httparse::Status::Partial) => break,
                        Err(_) => return,
                    };
                    let sent = match files.get(req.path.unwrap_or("/")) {
                        Some((head, body, file)) if sendfile => {
                            // The head with MSG_MORE, so it leaves with the body's first segment.
                            let fd = stream.as_raw_fd();
                            match send_all(&stream, head, libc::MSG_MORE).await {
                                Ok(()) => send_file(&stream, fd, file.as_raw_fd(), body.len() as u64).await,
                                Err(e) => Err(e),
                            }
                        }
                        Some((head, body, _)) => writev_all(&stream, head, body).await,
                        None => send_all(&stream, b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", 0).await,
                    };
                    if sent.is_err() {
                        return;
                    }
                    buf.drain(..n);
                }
                if stream.readable().await.is_err() {
                    return;
                }
                match stream.try_read_buf(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        }
    });
}

/// Sends all of `data` with `send(2)` and `flags`.
async fn send_all(stream: &tokio::net::TcpStream, data: &[u8], flags: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let mut done = 0;
    while done < data.len() {
        stream.writable().await?;
        let rest = &data[done..];
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            // SAFETY: `rest` is a live slice; the socket is open for the call.
            let n =
                unsafe { libc::send(stream.as_raw_fd(), rest.as_ptr().cast(), rest.len(), flags | libc::MSG_NOSIGNAL) };
            if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
        });
        match sent {
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `len` bytes of the file `file` from its start with `sendfile(2)`: from the page cache, without a copy.
async fn send_file(stream: &tokio::net::TcpStream, socket: i32, file: i32, len: u64) -> std::io::Result<()> {
    let mut offset: libc::off_t = 0;
    while (offset as u64) < len {
        stream.writable().await?;
        let rest = (len - offset as u64) as usize;
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the call; `offset` is a live local.
            let n = unsafe { libc::sendfile(socket, file, &mut offset, rest) };
            if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
        });
        match sent {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `head` and `body` with `writev(2)`, as hyper does.
async fn writev_all(stream: &tokio::net::TcpStream, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let mut done = 0;
    let total = head.len() + body.len();
    while done < total {
        stream.writable().await?;
        let slices: [std::io::IoSlice<'_>; 2] = if done < head.len() {
            [std::io::IoSlice::new(&head[done..]), std::io::IoSlice::new(body)]
        } else {
            [std::io::IoSlice::new(&body[done - head.len()..]), std::io::IoSlice::new(&[])]
        };
        match stream.try_write_vectored(&slices) {
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `provisor-bench hyper-floor HOST:PORT ROOT`: the least a hyper server on tokio can do per request, for the
/// cached-HTTP comparison (`bench/server.sh` with `FLOOR=1`): every GET gets the bytes of the file under ROOT at its
/// path, all read into memory at the start (so the same working set as nginx's and Provisor's), with nothing else
/// (no routing, identity, journal, access log, audit or metrics). What `provisor serve` adds is the difference
/// between this and it.
fn hyper_floor(args: &[String]) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use std::collections::HashMap;
    use std::sync::Arc;
    let addr: std::net::SocketAddr = args[0].parse().expect("HOST:PORT");
    let root = std::path::PathBuf::from(&args[1]);
    let files: HashMap<String, Bytes> = files_under(&root)
        .into_iter()
        .map(|(name, path)| (name, Bytes::from(std::fs::read(&path).expect("read a file"))))
        .collect();
    let files = Arc::new(files);
    serve_connections(addr, move |stream| {
        let files = files.clone();
        async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let body = files.get(req.uri().path()).cloned();
                async move {
                    let response = hyper::Response::builder()
                        .status(if body.is_some() { 200 } else { 404 })
                        .header("content-type", "application/octet-stream")
                        .body(Full::new(body.unwrap_or_default()))
                        .expect("response");
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        }
    });
}

/// Accepts connections on `addr` for ever (a multi-threaded tokio runtime, as `provisor serve` has), each with
/// `TCP_NODELAY` and served by `serve` on a task of its own: the accept loop of the floors.
fn serve_connections<F, S>(addr: std::net::SocketAddr, serve: S)
where
    S: Fn(tokio::net::TcpStream) -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    });
}
