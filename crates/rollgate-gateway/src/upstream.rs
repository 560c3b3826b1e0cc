//! Connections to model servers: HTTP/1.1 with keep-alive (over TLS for
//! `https://` endpoints, see `tls`), pooled per thread.
//!
//! Each gateway thread keeps its own idle connections, so taking one never
//! locks or waits on another thread, and a connection's task runs on the
//! thread that made it. A connection goes back to its thread's pool only
//! when its response has been read to the end; one cut off mid-body is
//! closed, since nothing else could be read from it. hyper-util's general
//! client did the same work with a shared, locked pool, a boxed future and a
//! spawned task per request: replacing it took a proxied request from 44.9k
//! to 38.1k instructions (bench/instructions.sh).

use crate::proxy::ProxyBody;
use crate::table::Endpoint;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections kept per endpoint and thread; more are closed.
const MAX_IDLE_PER_ENDPOINT: usize = 256;
/// A connection idle for longer is closed (as nginx's upstream `keepalive_timeout`):
/// it may lead to an endpoint no longer in the route table.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

/// Per endpoint, the idle connections, the most recently used last. The key
/// is the endpoint's Host value, its authority as written: hashing that is a
/// plain hash of bytes, where an `Authority` lower-cases each byte to hash.
type Pool = HashMap<HeaderValue, Vec<Idle>, foldhash::fast::RandomState>;

thread_local! {
    static IDLE: RefCell<Pool> = RefCell::new(Pool::default());
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("cannot connect within {0:?}")]
    ConnectTimeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("no TLS handshake within {0:?}")]
    TlsTimeout(Duration),
    #[error("{}", chain(.0))]
    Exchange(hyper::Error),
}

impl SendError {
    /// The client's request body went over its limit while it was being sent
    /// (a chunked body has no length to refuse up front): the client's fault,
    /// not the model server's.
    pub fn body_too_large(&self) -> bool {
        let SendError::Exchange(e) = self else { return false };
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return true;
            }
            source = s.source();
        }
        false
    }
}

/// A connection lent to one exchange: [`Connection::release`] it once the
/// response is read to the end; dropping it closes it.
pub struct Connection {
    sender: SendRequest<ProxyBody>,
    endpoint: HeaderValue,
}

impl Connection {
    /// Back to this thread's pool for the next request to the same endpoint.
    pub fn release(self) {
        if self.sender.is_closed() {
            return;
        }
        IDLE.with_borrow_mut(|idle| {
            let list = idle.entry(self.endpoint).or_default();
            if list.len() < MAX_IDLE_PER_ENDPOINT {
                list.push(Idle { sender: self.sender, since: Instant::now() });
            }
        });
    }
}

/// Closes this thread's connections that have been idle for over
/// [`IDLE_TIMEOUT`]. Each gateway thread's heartbeat calls it.
pub fn close_stale(now: Instant) {
    IDLE.with_borrow_mut(|idle| {
        idle.retain(|_, list| {
            // The longest idle are first: only those are looked at.
            let stale = list.iter().take_while(|c| now.saturating_duration_since(c.since) > IDLE_TIMEOUT).count();
            list.drain(..stale);
            !list.is_empty()
        });
    });
}

/// Sends `request` (origin-form URI, Host set) to `endpoint` on a pooled
/// connection or a new one, and returns the response head and the
/// connection, which the response body still uses.
///
/// A pooled connection that the server closed while it was idle gives the
/// request back unsent; it then goes out on another connection. That is the
/// only retry: a request that may have reached the model is never repeated.
pub async fn send(
    endpoint: &Endpoint,
    mut request: Request<ProxyBody>,
    connect_timeout: Duration,
) -> Result<(Response<Incoming>, Connection), SendError> {
    loop {
        let (mut sender, pooled) = match take_idle(&endpoint.host) {
            Some(sender) => (sender, true),
            None => (connect(endpoint, connect_timeout).await?, false),
        };
        // A returned connection may still be finishing the last exchange.
        if let Err(e) = sender.ready().await {
            if pooled {
                continue;
            }
            return Err(SendError::Exchange(e));
        }
        match sender.try_send_request(request).await {
            Ok(response) => return Ok((response, Connection { sender, endpoint: endpoint.host.clone() })),
            Err(mut failed) => match failed.take_message() {
                Some(unsent) if pooled => request = unsent,
                _ => return Err(SendError::Exchange(failed.into_error())),
            },
        }
    }
}

/// The request target a model server gets for `path_and_query`: under the
/// endpoint's base path, in origin form (the connection already says where).
pub fn target(endpoint: &Endpoint, path_and_query: &str) -> Result<Uri, http::uri::InvalidUri> {
    format!("{}{path_and_query}", endpoint.base_path).parse::<PathAndQuery>().map(Uri::from)
}

fn take_idle(endpoint: &HeaderValue) -> Option<SendRequest<ProxyBody>> {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.get_mut(endpoint)?;
        // The most recently used first: it is the likeliest to be open.
        std::iter::from_fn(|| list.pop()).map(|idle| idle.sender).find(|sender| !sender.is_closed())
    })
}

async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<SendRequest<ProxyBody>, SendError> {
    let authority = &endpoint.authority;
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let default_port = if endpoint.tls.is_some() { 443 } else { 80 };
    let port = authority.port_u16().unwrap_or(default_port);
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| SendError::ConnectTimeout(timeout))?
        .map_err(SendError::Connect)?;
    // Requests are small and latency-bound: send each write at once.
    stream.set_nodelay(true).map_err(SendError::Connect)?;
    match &endpoint.tls {
        None => handshake(stream).await,
        Some(tls) => {
            let secured =
                tokio::time::timeout(tls.handshake_timeout, tls.connector.connect(tls.server_name.clone(), stream))
                    .await
                    .map_err(|_| SendError::TlsTimeout(tls.handshake_timeout))?
                    .map_err(SendError::Tls)?;
            handshake(secured).await
        }
    }
}

/// HTTP/1.1 over `io`, its connection driven by a task of this thread.
async fn handshake<T>(io: T) -> Result<SendRequest<ProxyBody>, SendError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io)).await.map_err(SendError::Exchange)?;
    tokio::spawn(async move {
        // Its errors reach the exchange that was using it, through the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_to(endpoint: &HeaderValue) -> usize {
        IDLE.with_borrow(|idle| idle.get(endpoint).map_or(0, Vec::len))
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_idle_timeout_and_not_before() {
        // A server that accepts and keeps the socket: enough for a handshake.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let endpoint = crate::table::endpoint("test", &url, None, Duration::from_secs(1)).unwrap();
        let accepted = tokio::spawn(async move { listener.accept().await.map(|(socket, _)| socket) });
        let sender = connect(&endpoint, Duration::from_secs(2)).await.unwrap();
        let _socket = accepted.await.unwrap().unwrap();
        let key = endpoint.host.clone();
        Connection { sender, endpoint: key.clone() }.release();
        assert_eq!(idle_to(&key), 1);

        let now = Instant::now();
        close_stale(now + IDLE_TIMEOUT / 2);
        assert_eq!(idle_to(&key), 1, "closed too early");
        close_stale(now + IDLE_TIMEOUT + Duration::from_secs(1));
        assert_eq!(idle_to(&key), 0, "kept past the idle timeout");
    }
}
