use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::ladder::tests::{Canned, reply, serve};

const CANARY: &str = "canary-7f3a9d21-token";

fn post(url: &str, transport: &Transport, timeout: Duration) -> Result<Reply, TransportError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let secret = Secret::new(CANARY).unwrap();
    let url = reqwest::Url::parse(&format!("{url}/chat/completions")).unwrap();
    rt.block_on(transport.post_json(url, Some(&secret), &json!({"model": "m"}), timeout))
}

#[test]
fn sends_both_auth_headers_and_the_json_body() {
    let server = serve(vec![reply("200 OK", "", "{\"ok\":true}")]);
    let r = post(&server.url, &Transport::new().unwrap(), Duration::from_secs(10)).unwrap();
    assert_eq!((r.status, r.body.as_slice(), r.retries), (200, &b"{\"ok\":true}"[..], 0));
    let req = server.requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(req.starts_with("post /chat/completions "), "{req}");
    assert!(req.contains(&format!("authorization: bearer {CANARY}")), "{req}");
    assert!(req.contains(&format!("x-api-key: {CANARY}")), "{req}");
    assert!(req.ends_with("{\"model\":\"m\"}"), "{req}");
}

#[test]
fn a_5xx_is_retried_once_then_fails() {
    let server = serve(vec![reply("500 Internal Server Error", "", ""), reply("502 Bad Gateway", "", "")]);
    let e = post(&server.url, &Transport::new().unwrap(), Duration::from_secs(10)).unwrap_err();
    assert_eq!((e.detail.as_str(), e.retries), ("HTTP 502", 1));
    assert_eq!(server.requests.lock().unwrap().len(), 2);
}

#[test]
fn a_429_honours_retry_after_then_succeeds() {
    let server = serve(vec![reply("429 Too Many Requests", "retry-after: 1\r\n", ""), reply("200 OK", "", "{}")]);
    let started = Instant::now();
    let r = post(&server.url, &Transport::new().unwrap(), Duration::from_secs(10)).unwrap();
    assert_eq!(r.retries, 1);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After waited for");
}

#[test]
fn a_retry_after_beyond_the_timeout_is_not_waited_for() {
    let server = serve(vec![reply("429 Too Many Requests", "retry-after: 3600\r\n", "")]);
    let started = Instant::now();
    let e = post(&server.url, &Transport::new().unwrap(), Duration::from_secs(2)).unwrap_err();
    assert!(e.detail.contains("Retry-After exceeds"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_silent_agent_is_bounded_by_the_timeout() {
    let server = serve(vec![Canned::Hang]);
    let started = Instant::now();
    let e = post(&server.url, &Transport::new().unwrap(), Duration::from_millis(500)).unwrap_err();
    assert!(e.detail.contains("no complete reply within 0.5 s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_oversized_body_is_refused_while_reading() {
    let big = "x".repeat(64 * 1024);
    // Declared length over the cap, and a chunked body over the cap (no length up front).
    let chunked = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let server = serve(vec![reply("200 OK", "", &big), Canned::Raw(chunked)]);
    let transport = Transport::with_cap(1024).unwrap();
    for _ in 0..2 {
        let e = post(&server.url, &transport, Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.detail, "reply larger than 1024 bytes");
    }
}

#[test]
fn a_redirect_to_another_host_is_refused() {
    let server = serve(vec![reply("307 Temporary Redirect", "location: http://localhost:9/steal\r\n", "")]);
    let e = post(&server.url, &Transport::new().unwrap(), Duration::from_secs(10)).unwrap_err();
    assert_eq!(e.detail, "redirect to another host refused");
    assert!(!e.to_string().contains(CANARY));
}

#[test]
fn a_refused_connection_is_retried_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let e = post(&url, &Transport::new().unwrap(), Duration::from_secs(10)).unwrap_err();
    assert_eq!((e.detail.as_str(), e.retries), ("connection refused", 1));
}

/// A server that answers one request with an endless gzip stream of zeros (no length, closed
/// only when the client hangs up, or after `limit` decompressed bytes): a reply that is never
/// complete can only be refused while it is being read. Returns the URL and the decompressed
/// bytes the server got into the socket.
fn gzip_bomb(limit: usize) -> (String, std::thread::JoinHandle<usize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut accept_encoding = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if line.to_ascii_lowercase().starts_with("accept-encoding:") {
                accept_encoding = line.to_ascii_lowercase();
            }
        }
        assert!(accept_encoding.contains("gzip"), "razar asks for gzip: {accept_encoding:?}");
        let mut s = stream;
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\nconnection: close\r\n\r\n";
        if s.write_all(head.as_bytes()).is_err() {
            return 0;
        }
        let mut gz = flate2::write::GzEncoder::new(s, flate2::Compression::best());
        let zeros = vec![b'0'; 1024 * 1024];
        let mut sent = 0;
        while sent < limit {
            if gz.write_all(&zeros).and_then(|_| gz.flush()).is_err() {
                break;
            }
            sent += zeros.len();
        }
        sent
    });
    (url, thread)
}

#[test]
fn a_gzip_bomb_is_refused_while_decompressing() {
    // 4 GiB of zeros compress to about 4 MiB on the wire: razar must stop at its 4 MiB cap of
    // decompressed bytes, long before the server is done.
    let (url, server) = gzip_bomb(4 << 30);
    let started = Instant::now();
    let e = post(&url, &Transport::new().unwrap(), Duration::from_secs(60)).unwrap_err();
    assert_eq!(e.detail, format!("reply larger than {MAX_REPLY} bytes"));
    assert_eq!(e.retries, 0, "an oversized reply is not retried");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let sent = server.join().unwrap();
    assert!(sent < 1 << 30, "the server got {sent} decompressed bytes out before razar hung up");
}

#[test]
fn a_gzip_reply_within_the_cap_is_decompressed() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"ok\":true}").unwrap();
    let body = gz.finish().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        use std::io::Read;
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
    });
    let r = post(&url, &Transport::new().unwrap(), Duration::from_secs(10)).unwrap();
    assert_eq!(r.body, b"{\"ok\":true}");
    server.join().unwrap();
}
