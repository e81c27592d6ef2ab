//! A loopback HTTP/1.1 server for the ladder's unit tests: answers canned replies in order,
//! one connection each, and records every request it read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the server does with one connection.
pub(crate) enum Canned {
    /// Write these bytes and close.
    Raw(String),
    /// Read the request, then never answer (the connection stays open until the test ends).
    Hang,
}

pub(crate) fn reply(status: &str, headers: &str, body: &str) -> Canned {
    Canned::Raw(format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}",
        body.len()
    ))
}

pub(crate) struct Server {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    _thread: JoinHandle<()>,
}

pub(crate) fn serve(canned: Vec<Canned>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        for answer in canned {
            let Ok((stream, _)) = listener.accept() else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            seen.lock().unwrap().push(format!("{head}\r\n{}", String::from_utf8_lossy(&body)));
            match answer {
                Canned::Raw(bytes) => {
                    let mut s = stream;
                    let _ = s.write_all(bytes.as_bytes());
                }
                Canned::Hang => held.push(stream),
            }
        }
        // Keep hung connections open until the test process ends.
        if !held.is_empty() {
            let _ = listener.accept();
        }
    });
    Server { url, requests, _thread: thread }
}
