//! The control socket (`hb-monitor status|standby|takeover`): a Unix socket, root only,
//! served on threads of its own so that a client that connects and stalls never holds up
//! the heartbeat loop. Each request is handed to the loop (a channel, then a byte on its
//! wake-up pipe) and the loop's answer written back.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// The control socket.
pub const DEFAULT_CONTROL: &str = "/run/hb-monitor.sock";

/// At most this many control clients are served at once.
const MAX_CLIENTS: usize = 8;

/// The longest request read (`takeover` and a group's name).
const MAX_REQUEST: usize = 256;

/// A request, read by a control thread and answered by the loop.
pub struct ControlRequest {
    /// The request's text, trimmed.
    pub text: String,
    /// Where the answer goes.
    pub reply: mpsc::Sender<String>,
}

/// Binds the socket at `path` (0600: standby and takeover come through here) and serves it;
/// requests go to `requests`, each followed by a byte on `wake`.
pub fn serve(path: &Path, requests: mpsc::Sender<ControlRequest>, wake: OwnedFd) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("control socket {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let wake = Arc::new(wake);
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                // The socket file is 0600 already; the peer's credentials say it again, so
                // that a socket reached some other way (a copied descriptor) still answers
                // root only.
                let uid = nix::sys::socket::getsockopt(
                    &stream,
                    nix::sys::socket::sockopt::PeerCredentials,
                )
                .map(|c| c.uid());
                if uid != Ok(0) {
                    let _ = stream.write_all(
                        b"{\"error\":\"the hb-monitor control socket answers root only\"}\n",
                    );
                    continue;
                }
                let (requests, wake) = (requests.clone(), wake.clone());
                let busy = |mut stream: UnixStream| {
                    let _ = stream.write_all(b"{\"error\":\"busy: too many control clients\"}\n");
                };
                serve_limited(&open, "control-client", stream, busy, move |stream| {
                    serve_client(stream, &requests, &wake)
                });
            }
        })
        .map(|_| ())
}

/// Serves `stream` with `serve` on a short-lived thread of its own, so that a client that
/// stalls does not keep the others waiting; at most [`MAX_CLIENTS`] at a time (`open`
/// counts them), and beyond that `busy` answers it at once.
pub(super) fn serve_limited<S: Send + 'static>(
    open: &Arc<AtomicUsize>,
    name: &str,
    stream: S,
    busy: impl FnOnce(S),
    serve: impl FnOnce(S) + Send + 'static,
) {
    if open.load(Ordering::Relaxed) >= MAX_CLIENTS {
        busy(stream);
        return;
    }
    open.fetch_add(1, Ordering::Relaxed);
    let open = open.clone();
    let served = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            serve(stream);
            open.fetch_sub(1, Ordering::Relaxed);
        });
    if served.is_err() {
        log::warn!("{name}: cannot start a thread for a client");
    }
}

/// How long a client has to send its whole request (a slow client, one byte a second, is
/// cut off here rather than holding a client slot).
const REQUEST_DEADLINE: Duration = Duration::from_secs(1);

/// Why a request was refused before it reached the loop.
#[derive(Debug, PartialEq, Eq)]
enum BadRequest {
    /// More than [`MAX_REQUEST`] bytes without an end.
    TooLong,
    /// Not UTF-8 text.
    NotText,
    /// Nothing complete within [`REQUEST_DEADLINE`].
    TooSlow,
}

impl BadRequest {
    fn reply(&self) -> String {
        let error = match self {
            BadRequest::TooLong => format!("request too long (at most {MAX_REQUEST} bytes)"),
            BadRequest::NotText => "request is not text".into(),
            BadRequest::TooSlow => format!(
                "no complete request within {} s",
                REQUEST_DEADLINE.as_secs()
            ),
        };
        serde_json::json!({ "error": error }).to_string()
    }
}

/// A stream whose reads can be given a time limit (the control socket's, the metrics').
pub(super) trait TimedRead: Read {
    /// As `UnixStream::set_read_timeout`.
    fn read_timeout(&self, limit: Duration) -> io::Result<()>;
}

impl TimedRead for UnixStream {
    fn read_timeout(&self, limit: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(limit))
    }
}

impl TimedRead for std::net::TcpStream {
    fn read_timeout(&self, limit: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(limit))
    }
}

/// Why a bounded read gave up.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unbounded {
    /// More than the most allowed without the end.
    TooLong,
    /// Nothing complete within the time allowed.
    TooSlow,
}

/// Reads up to the first `end` (left out) or the client's end of writing, at most `max`
/// bytes, within `limit` in all: a client cannot hold a thread longer, nor make it hold
/// more.
pub(super) fn read_bounded(
    stream: &mut impl TimedRead,
    end: &[u8],
    max: usize,
    limit: Duration,
) -> Result<Vec<u8>, Unbounded> {
    let deadline = std::time::Instant::now() + limit;
    let mut request = Vec::with_capacity(max.min(4096));
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || stream.read_timeout(left).is_err() {
            return Err(Unbounded::TooSlow);
        }
        let room = (max + 1 - request.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => break,
            Ok(n) => {
                request.extend_from_slice(&chunk[..n]);
                if let Some(at) = request.windows(end.len()).position(|w| w == end) {
                    request.truncate(at);
                    break;
                }
                if request.len() > max {
                    return Err(Unbounded::TooLong);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Unbounded::TooSlow),
        }
    }
    if request.len() > max {
        return Err(Unbounded::TooLong);
    }
    Ok(request)
}

/// Reads one request: up to a newline or the client's end of writing, at most
/// [`MAX_REQUEST`] bytes, within [`REQUEST_DEADLINE`] in all.
fn read_request(stream: &mut UnixStream) -> Result<String, BadRequest> {
    let request =
        read_bounded(stream, b"\n", MAX_REQUEST, REQUEST_DEADLINE).map_err(|e| match e {
            Unbounded::TooLong => BadRequest::TooLong,
            Unbounded::TooSlow => BadRequest::TooSlow,
        })?;
    String::from_utf8(request)
        .map(|t| t.trim().to_string())
        .map_err(|_| BadRequest::NotText)
}

/// Hands `text` to the loop (a byte on `wake` tells it) and waits for its answer; None
/// when the loop has ended.
pub(super) fn ask(
    requests: &mpsc::Sender<ControlRequest>,
    wake: &OwnedFd,
    text: String,
) -> Option<String> {
    let (reply, answer) = mpsc::channel();
    requests.send(ControlRequest { text, reply }).ok()?;
    crate::sys::poll::wake(wake);
    Some(
        answer
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| r#"{"error":"the daemon did not answer"}"#.to_string()),
    )
}

/// Reads one request, has the loop answer it, writes the answer. A bad request is answered
/// with an error here and never reaches the loop.
fn serve_client(mut stream: UnixStream, requests: &mpsc::Sender<ControlRequest>, wake: &OwnedFd) {
    let text = match read_request(&mut stream) {
        Ok(text) => text,
        Err(bad) => {
            let _ = stream.write_all(bad.reply().as_bytes());
            let _ = stream.write_all(b"\n");
            return;
        }
    };
    let Some(reply) = ask(requests, wake, text) else {
        return; // the loop has ended
    };
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.write_all(b"\n");
}

/// Sends `request` to the daemon at `control` and returns its answer (JSON).
pub fn query(control: &Path, request: &str) -> io::Result<String> {
    let mut stream = UnixStream::connect(control)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}
