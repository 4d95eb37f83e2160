//! `metrics_listen`: a minimal, read-only HTTP/1.0 responder for a Prometheus scrape. It
//! answers `GET /metrics` (and `HEAD`) with [`metrics::render`] of the loop's status,
//! 404 to any other path and 405 to any other method; nothing else. Like the control socket
//! it runs on threads of its own, a few clients at a time, each with at most
//! [`MAX_HEAD`] bytes and [`HEAD_DEADLINE`] to send its request head, so that a hostile or
//! stalled client never reaches the heartbeat loop.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::control::{self, ControlRequest, Unbounded};
use super::metrics;

/// The longest request head read (the request line and its headers).
const MAX_HEAD: usize = 4096;

/// How long a client has to send its request head.
const HEAD_DEADLINE: Duration = Duration::from_secs(1);

/// Binds `addr` and serves it; each scrape asks the loop for its status through
/// `requests` (a byte on `wake` tells it).
pub fn serve(
    addr: SocketAddr,
    requests: mpsc::Sender<ControlRequest>,
    wake: OwnedFd,
) -> io::Result<()> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("metrics_listen {addr}: {e}")))?;
    let wake = Arc::new(wake);
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let (requests, wake) = (requests.clone(), wake.clone());
                let busy = |mut s: TcpStream| {
                    let _ = s.write_all(&response(
                        "503 Service Unavailable",
                        "too many clients\n",
                        true,
                    ));
                };
                control::serve_limited(&open, "metrics-client", stream, busy, move |stream| {
                    serve_client(stream, &requests, &wake)
                });
            }
        })
        .map(|_| ())
}

fn serve_client(mut stream: TcpStream, requests: &mpsc::Sender<ControlRequest>, wake: &OwnedFd) {
    let reply = match control::read_bounded(&mut stream, b"\r\n\r\n", MAX_HEAD, HEAD_DEADLINE) {
        Err(Unbounded::TooLong) => response(
            "431 Request Header Fields Too Large",
            "request head too long\n",
            true,
        ),
        Err(Unbounded::TooSlow) => response(
            "408 Request Timeout",
            "no complete request within 1 s\n",
            true,
        ),
        Ok(head) => match route(&head) {
            Route::Metrics { body } => {
                let text = match control::ask(requests, wake, "status".into()) {
                    Some(status) => match serde_json::from_str(&status) {
                        Ok(status) => metrics::render(&status),
                        Err(_) => metrics::render_down(),
                    },
                    None => return,
                };
                metrics_response(&text, body)
            }
            Route::NotFound => response("404 Not Found", "only /metrics is served here\n", true),
            Route::BadMethod => {
                response("405 Method Not Allowed", "only GET is served here\n", true)
            }
            Route::Bad => response("400 Bad Request", "not an HTTP request\n", true),
        },
    };
    let _ = stream.write_all(&reply);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// The metrics (`body`: a GET, not a HEAD).
    Metrics {
        body: bool,
    },
    NotFound,
    BadMethod,
    Bad,
}

fn route(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::Bad;
    };
    let line = head.lines().next().unwrap_or("");
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") || words.next().is_some() {
        return Route::Bad;
    }
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Route::Metrics {
            body: method == "GET",
        },
        ("GET" | "HEAD", _) => Route::NotFound,
        _ => Route::BadMethod,
    }
}

fn metrics_response(text: &str, body: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        metrics::CONTENT_TYPE,
        text.len()
    )
    .into_bytes();
    if body {
        out.extend_from_slice(text.as_bytes());
    }
    out
}

fn response(status: &str, text: &str, body: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    )
    .into_bytes();
    if body {
        out.extend_from_slice(text.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        let r = |s: &str| route(s.as_bytes());
        assert_eq!(
            r("GET /metrics HTTP/1.1\r\nHost: x"),
            Route::Metrics { body: true }
        );
        assert_eq!(
            r("GET /metrics?x=1 HTTP/1.0"),
            Route::Metrics { body: true }
        );
        assert_eq!(r("HEAD /metrics HTTP/1.1"), Route::Metrics { body: false });
        assert_eq!(r("GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(r("GET /metrics/../status HTTP/1.1"), Route::NotFound);
        assert_eq!(r("POST /metrics HTTP/1.1"), Route::BadMethod);
        assert_eq!(r("GET /metrics"), Route::Bad);
        assert_eq!(r("GET /metrics SSH-2.0"), Route::Bad);
        assert_eq!(route(b"\xff\xfe"), Route::Bad);
    }
}
