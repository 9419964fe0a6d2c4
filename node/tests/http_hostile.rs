//! Hostile HTTP clients against a real `vidswarm node` process: connections that send nothing,
//! bodies that stall, responses nobody reads, requests for another host name and writes from
//! another site. Each bound is asserted on the process (its open descriptors, its data dir), and
//! an honest request still gets its answer in the same test.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::procs::{add, node_with_http, Proc};
use common::{bytes, write_split_dir};

const BIN: &str = env!("CARGO_BIN_EXE_vidswarm");

/// A node on `data` with `extra` arguments, and its HTTP API's address.
fn start(data: &Path, extra: &[&str]) -> (Proc, SocketAddr) {
    let (node, _, url) = node_with_http(BIN, data, None, extra);
    (node, url.trim_start_matches("http://").parse().unwrap())
}

fn open_fds(node: &Proc) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", node.0.id()))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// One request on a fresh connection; the status line and the body, read within `within`.
fn request(addr: SocketAddr, raw: &str, within: Duration) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.lines().next().unwrap_or("").to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

fn get(addr: SocketAddr, path: &str, headers: &str) -> (String, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"),
        Duration::from_secs(10),
    )
}

/// An honest `GET /health` is answered 200 within `limit`.
fn health_answered_within(addr: SocketAddr, limit: Duration) {
    let started = Instant::now();
    let (status, _) = get(addr, "/health", "");
    assert!(status.contains("200"), "{status:?}");
    assert!(
        started.elapsed() < limit,
        "an honest request waited {:?}",
        started.elapsed()
    );
}

/// Reads from `s` until the server closes it (EOF or reset), or `within` passes.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64 << 10];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn connections_that_send_nothing_are_capped_and_timed_out_and_an_honest_request_gets_through() {
    let data = tempfile::tempdir().unwrap();
    let (node, addr) = start(
        data.path(),
        &["--http-max-connections", "8", "--http-header-timeout", "1"],
    );
    assert!(get(addr, "/health", "").0.contains("200"));
    let baseline = open_fds(&node);

    // Attackers: 40 connections, each sending half a request line and nothing more, reopened
    // as soon as the node closes one.
    let stop = Arc::new(AtomicBool::new(false));
    let closed_in_time = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for _ in 0..40 {
        let (stop, closed_in_time) = (stop.clone(), closed_in_time.clone());
        attackers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    continue;
                };
                let _ = s.write_all(b"GET /health HTTP/1.1\r\nHo");
                // Queued connections wait for a slot first; an accepted one is closed after
                // the 1 s header timeout.
                if closed_within(&mut s, Duration::from_secs(30)) {
                    closed_in_time.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // While they hold every slot: the node's descriptors stay within the cap.
    let watch_until = Instant::now() + Duration::from_secs(3);
    let mut most = 0;
    while Instant::now() < watch_until {
        most = most.max(open_fds(&node));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        most <= baseline + 8 + 2,
        "open descriptors went from {baseline} to {most} with a cap of 8 connections"
    );
    // An honest request queues behind them and is answered once a slot frees.
    health_answered_within(addr, Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    assert!(
        closed_in_time.load(Ordering::Relaxed) >= 8,
        "the node closed too few silent connections"
    );
}

/// A connection to `addr` from the loopback address `from` (all of 127.0.0.0/8 is this machine's).
fn connect_from(from: std::net::Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((from, 0)))?;
        socket.connect(addr).await
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

#[test]
fn one_client_address_cannot_take_every_connection_slot() {
    let data = tempfile::tempdir().unwrap();
    let (node, addr) = start(
        data.path(),
        &[
            "--http-max-connections",
            "8",
            "--http-max-per-client",
            "4",
            "--http-header-timeout",
            "20",
        ],
    );
    assert!(get(addr, "/health", "").0.contains("200"));
    let baseline = open_fds(&node);

    // One machine (127.0.0.2) opens 20 connections that send nothing: 4 are kept (until the
    // 20 s header timeout), the rest closed at once.
    let attacker: std::net::Ipv4Addr = "127.0.0.2".parse().unwrap();
    let mut held = Vec::new();
    let mut closed = 0;
    for _ in 0..20 {
        let mut s = connect_from(attacker, addr).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
        if closed_within(&mut s, Duration::from_millis(300)) {
            closed += 1;
        } else {
            held.push(s);
        }
    }
    assert_eq!(held.len(), 4, "connections kept from one address");
    assert_eq!(closed, 16);
    let fds = open_fds(&node);
    assert!(
        fds <= baseline + 4 + 2,
        "open descriptors went from {baseline} to {fds} with 4 connections held"
    );
    // Another client is answered at once, not after the attacker's header timeout.
    health_answered_within(addr, Duration::from_secs(3));
    // A closed connection gives the address its slot back.
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect_from(attacker, addr).unwrap();
        s.write_all(
            format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut out = String::new();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read_to_string(&mut out);
        if out.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the address never got its slot back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A video of one 24 MiB fragment added to `data`; its id.
fn one_big_fragment(work: &Path, data: &Path) -> String {
    let split = work.join("split");
    let manifest = write_split_dir(&split, &[bytes(7, 24 << 20)]);
    add(BIN, &split, data);
    manifest.video_id.to_string()
}

#[test]
fn a_client_that_never_reads_loses_its_connection_after_the_send_timeout() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let video = one_big_fragment(work.path(), &data);
    let (node, addr) = start(&data, &["--http-send-timeout", "1"]);
    let baseline = open_fds(&node);

    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("GET /api/v1/videos/{video}/fragments/0 HTTP/1.1\r\nHost: {addr}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    // Read nothing: 24 MiB is more than the socket buffers hold, so the node's write stalls,
    // and after the 1 s send timeout the node lets the connection go.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if open_fds(&node) <= baseline {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node still holds the stalled download"
        );
    }
    // Then the client finds the response cut short.
    let mut got = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.read_to_end(&mut got);
    assert!(
        got.len() < 24 << 20,
        "the whole fragment arrived: {}",
        got.len()
    );
    // And an honest download of the same fragment completes.
    let (status, _) = request(
        addr,
        &format!(
            "GET /api/v1/videos/{video}/fragments/0 HTTP/1.1\r\nHost: {addr}\r\nRange: bytes=0-99\r\nConnection: close\r\n\r\n"
        ),
        Duration::from_secs(10),
    );
    assert!(status.contains("206"), "{status:?}");
}

#[test]
fn an_upload_that_stalls_fails_after_the_body_timeout_and_leaves_nothing() {
    let data = tempfile::tempdir().unwrap();
    let (node, addr) = start(
        data.path(),
        &["--http-body-timeout", "1", "--max-uploads", "1"],
    );
    let boundary = "XyZ";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fragment_0.mp4\"\r\nContent-Type: video/mp4\r\n\r\n"
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!(
            "POST /upload_fragment HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 10000000\r\n\r\n{head}"
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&[0u8; 100_000]).unwrap();
    // Then nothing: the node gives up on the body and answers or closes.
    assert!(
        closed_within(&mut s, Duration::from_secs(15)),
        "the node waits for the stalled body"
    );
    let tmp = data.path().join("tmp");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled upload left a temp file"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its upload slot (one) is free again: an honest upload goes through.
    let fragment = bytes(3, 5000);
    let mut body = head.into_bytes();
    body.extend_from_slice(&fragment);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        format!(
            "POST /upload_fragment HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut answer = String::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, list) = get(addr, "/list_fragments", "");
    assert!(list.contains("fragment_0.mp4"), "{list}");
    drop(node);
}

#[test]
fn other_host_names_and_cross_site_writes_are_refused_and_named_origins_pass() {
    let data = tempfile::tempdir().unwrap();
    let (_node, addr) = start(
        data.path(),
        &[
            "--allow-host",
            "video.example",
            "--cors-origin",
            "https://app.example",
        ],
    );
    let with_host = |host: &str| {
        request(
            addr,
            &format!("GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            Duration::from_secs(10),
        )
        .0
    };
    // DNS rebinding: a name that resolves here but is not this node's is refused.
    assert!(with_host("evil.example:8000").contains("403"));
    assert!(with_host("localhost.evil.example").contains("403"));
    for ok in ["localhost:8000", "127.0.0.1", "[::1]:1", "video.example"] {
        assert!(with_host(ok).contains("200"), "{ok}");
    }

    // A cross-site form post (no preflight) and a cross-site GET that writes.
    let boundary = "b";
    let post = |origin: &str, name: &str| {
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n{origin}\r\n--{boundary}--\r\n"
        );
        request(
            addr,
            &format!(
                "POST /upload_fragment HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
            Duration::from_secs(10),
        )
    };
    let (status, body_text) = post("http://evil.example", "fragment_1.mp4");
    assert!(status.contains("403"), "{status}");
    assert!(body_text.contains("\"forbidden\""), "{body_text}");
    let (status, _) = get(
        addr,
        "/send_all_fragments",
        "Sec-Fetch-Site: cross-site\r\n",
    );
    assert!(status.contains("403"), "{status}");
    assert!(!get(addr, "/list_fragments", "").1.contains("fragment_1"));
    // The node's own pages and the named origin may write.
    assert!(post(&format!("http://{addr}"), "fragment_1.mp4")
        .0
        .contains("200"));
    assert!(post("https://app.example", "fragment_2.mp4")
        .0
        .contains("200"));
    let (_, list) = get(addr, "/list_fragments", "");
    assert!(
        list.contains("fragment_1") && list.contains("fragment_2"),
        "{list}"
    );

    // CORS: the named origin's preflight is answered; another's gets no permission.
    let preflight = |origin: &str| {
        request(
            addr,
            &format!(
                "OPTIONS /api/v1/videos HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
            ),
            Duration::from_secs(10),
        )
    };
    let (status, _) = preflight("https://app.example");
    assert!(status.contains("200"), "{status}");
    let raw = |origin: &str| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(
            format!(
                "GET /health HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.to_ascii_lowercase()
    };
    assert!(raw("https://app.example").contains("access-control-allow-origin: https://app.example"));
    assert!(!raw("http://evil.example").contains("access-control-allow-origin"));
}
