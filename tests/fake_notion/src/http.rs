//! A minimal HTTP/1.1 server loop: one thread per connection, keep-alive, Content-Length bodies.
//! Owning the socket is what lets faults drop a connection or cut a body short.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

pub struct Request {
    pub method: String,
    /// Path without the query string, percent-encoding untouched.
    pub path: String,
    pub query: HashMap<String, Vec<String>>,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn query_one(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .and_then(|v| v.first())
            .map(|s| s.as_str())
    }
}

/// What the handler wants done with the connection.
pub enum Reply {
    Send(Response),
    /// Close the socket without a byte of response (a dropped connection).
    Drop,
    /// Send the headers and only the first `keep` bytes of the body, then close.
    Truncate(Response, usize),
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body).expect("json"),
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Site Overloaded",
        _ => "Status",
    }
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        m.entry(percent_decode(&k.replace('+', " ")))
            .or_default()
            .push(percent_decode(&v.replace('+', " ")));
    }
    m
}

pub fn serve<H>(listener: TcpListener, handler: Arc<H>)
where
    H: Fn(Request) -> Reply + Send + Sync + 'static,
{
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let h = handler.clone();
        std::thread::spawn(move || {
            let _ = connection(stream, &*h);
        });
    }
}

fn connection<H: Fn(Request) -> Reply>(mut stream: TcpStream, handler: &H) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Read until the header block is complete.
        let (req, consumed) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let target = parsed.path.unwrap_or("/").to_string();
                    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
                    let req = Request {
                        method: parsed.method.unwrap_or("GET").to_string(),
                        path: path.to_string(),
                        query: parse_query(q),
                        headers: parsed
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_string(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                        body: Vec::new(),
                    };
                    break (req, n);
                }
                Ok(httparse::Status::Partial) => {
                    if buf.len() > 1 << 20 {
                        return Ok(());
                    }
                    let mut chunk = [0u8; 8192];
                    let n = stream.read(&mut chunk)?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Err(_) => {
                    let r = Response::json(
                        400,
                        &serde_json::json!({"object":"error","status":400,"code":"invalid_request","message":"Malformed HTTP request."}),
                    );
                    write_response(&mut stream, &r, None, true)?;
                    return Ok(());
                }
            }
        };
        let mut req = req;
        buf.drain(..consumed);
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            let mut chunk = [0u8; 65536];
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        req.body = buf.drain(..len).collect();
        let close = req
            .header("connection")
            .map(|v| v.eq_ignore_ascii_case("close"))
            .unwrap_or(false);
        match handler(req) {
            Reply::Send(r) => write_response(&mut stream, &r, None, close)?,
            Reply::Drop => {
                let _ = stream.shutdown(Shutdown::Both);
                return Ok(());
            }
            Reply::Truncate(r, keep) => {
                write_response(&mut stream, &r, Some(keep), false)?;
                let _ = stream.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        if close {
            return Ok(());
        }
    }
}

fn write_response(
    stream: &mut TcpStream,
    r: &Response,
    keep: Option<usize>,
    close: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let body = match keep {
        Some(k) => &r.body[..k.min(r.body.len())],
        None => &r.body[..],
    };
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    stream.flush()
}
