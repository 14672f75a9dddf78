//! A small, bounded HTTP/1.1 server for the exporter's few GET paths, on `std::net` with
//! `httparse` parsing the request head.
//!
//! Bounds: at most [`Limits::connections`] connections are served at once (one thread
//! each; beyond that a connection gets 503 and is closed); a request head larger than
//! [`Limits::head_bytes`] gets 431; a client that has not sent its whole head within
//! [`Limits::head_time`] (one byte a second, say) gets 408; every read and write has a
//! timeout. One request per connection (`Connection: close`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connections: usize,
    pub head_bytes: usize,
    pub head_time: Duration,
    pub io_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 64,
            head_bytes: 16 * 1024,
            head_time: Duration::from_secs(10),
            io_timeout: Duration::from_secs(10),
        }
    }
}

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub accept: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra header lines (`Allow: GET, HEAD`).
    pub headers: Vec<String>,
}

impl Response {
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Serve connections of `listener` until it fails.
pub fn serve(listener: TcpListener, handler: Arc<Handler>, limits: Limits) -> std::io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            // a connection that failed before it was accepted (reset, out of descriptors):
            // take a breath rather than spin
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_read_timeout(Some(limits.io_timeout));
        let _ = stream.set_write_timeout(Some(limits.io_timeout));
        if active.fetch_add(1, Ordering::SeqCst) >= limits.connections {
            active.fetch_sub(1, Ordering::SeqCst);
            let mut s = stream;
            let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
            // answered from the accept loop: written (bounded by the timeout), never drained
            let _ = send(&mut s, &Response::text(503, "busy\n"), false);
            continue;
        }
        let h = Arc::clone(&handler);
        let a = Arc::clone(&active);
        let spawned = std::thread::Builder::new()
            .name("kvmtune-http".into())
            .spawn(move || {
                struct Done(Arc<AtomicUsize>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let _done = Done(a);
                connection(stream, h.as_ref(), limits);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
    Ok(())
}

/// Read one request head (bounded in size and time), answer it, close.
fn connection(mut stream: TcpStream, handler: &Handler, limits: Limits) {
    let start = Instant::now();
    let mut buf = vec![0u8; limits.head_bytes];
    let mut len = 0usize;
    let req = loop {
        if start.elapsed() > limits.head_time {
            let _ = write_response(
                &mut stream,
                &Response::text(408, "request timeout\n"),
                false,
            );
            return;
        }
        if len == buf.len() {
            let _ = write_response(
                &mut stream,
                &Response::text(431, "request head too large\n"),
                false,
            );
            return;
        }
        // read at most until the head deadline
        let left = limits
            .head_time
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        let _ = stream.set_read_timeout(Some(left.min(limits.io_timeout)));
        match stream.read(&mut buf[len..]) {
            Ok(0) => return,
            Ok(n) => len += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Request::new(&mut headers);
        match r.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let accept = r
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("accept"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                let path = r.path.unwrap_or("/");
                let path = path.split(['?', '#']).next().unwrap_or("/").to_string();
                break Request {
                    method: r.method.unwrap_or("").to_string(),
                    path,
                    accept,
                };
            }
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => {
                let _ = write_response(
                    &mut stream,
                    &Response::text(431, "too many header fields\n"),
                    false,
                );
                return;
            }
            Err(_) => {
                let _ = write_response(&mut stream, &Response::text(400, "bad request\n"), false);
                return;
            }
        }
    };
    drop(buf);
    let _ = stream.set_read_timeout(Some(limits.io_timeout));
    let resp = handler(&req);
    let _ = write_response(&mut stream, &resp, req.method == "HEAD");
}

/// Send a response, then read what the client still sends (briefly) so that closing does
/// not reset the connection before the client has read the response.
fn write_response(s: &mut TcpStream, r: &Response, head_only: bool) -> std::io::Result<()> {
    send(s, r, head_only)?;
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

fn send(s: &mut TcpStream, r: &Response, head_only: bool) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for h in &r.headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if !head_only {
        s.write_all(&r.body)?;
    }
    s.flush()?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}
