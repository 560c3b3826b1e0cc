//! The listener: HTTP/1.1 with keep-alive, one task per connection, and a
//! graceful stop that lets requests in flight finish.
//!
//! Two ways to run it: on the caller's runtime ([`serve`], for tests and
//! embedding), or thread per core ([`serve_on_threads`]): each thread has its
//! own single-threaded runtime, its own `SO_REUSEPORT` listener and its own
//! backend pool, so a request never hops between threads.

use crate::proxy::Gateway;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use socket2::{Domain, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Connections one thread serves at once. Past it, new connections wait in
/// the kernel's accept queue instead of costing memory here.
const MAX_CONNECTIONS_PER_THREAD: usize = 1024;

/// How long a stop waits for requests in flight.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct RunningGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    running: Running,
}

enum Running {
    Task(JoinHandle<()>),
    Threads(Vec<std::thread::JoinHandle<()>>),
}

impl RunningGateway {
    /// Stops accepting; connections finish their current request.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        match self.running {
            Running::Task(task) => {
                let _ = task.await;
            }
            Running::Threads(threads) => {
                let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
            }
        }
    }
}

/// Serves on the caller's runtime.
pub async fn serve(gateway: Arc<Gateway>, listen: SocketAddr) -> std::io::Result<RunningGateway> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    check_health(&gateway, stopped.clone());
    let task = tokio::spawn(accept_forever(listener, gateway.clone(), stopped));
    Ok(RunningGateway { addr, gateway, stop, running: Running::Task(task) })
}

/// Serves on `threads` threads of its own (at least one), each accepting on
/// its own socket bound to the same address. Health probes run on the caller's runtime.
pub async fn serve_on_threads(
    gateway: Arc<Gateway>,
    listen: SocketAddr,
    threads: usize,
) -> std::io::Result<RunningGateway> {
    let first = reusable_listener(listen)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(reusable_listener(addr)?);
    }
    let (stop, stopped) = watch::channel(false);
    check_health(&gateway, stopped.clone());
    let mut running = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (gateway, stopped) = (gateway.clone(), stopped.clone());
        let thread = std::thread::Builder::new().name(format!("rollgate-gw-{i}")).spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => accept_forever(listener, gateway, stopped).await,
                    Err(e) => tracing::error!("gateway thread {i} cannot use its listener: {e}"),
                }
            });
        })?;
        running.push(thread);
    }
    Ok(RunningGateway { addr, gateway, stop, running: Running::Threads(running) })
}

fn reusable_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn check_health(gateway: &Arc<Gateway>, stopped: watch::Receiver<bool>) {
    tokio::spawn(crate::health::check_forever(gateway.clone(), stopped));
}

async fn accept_forever(listener: TcpListener, gateway: Arc<Gateway>, mut stopped: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS_PER_THREAD));
    let heartbeat = tokio::spawn(keep_a_timer_due());
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = stopped.changed() => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let mut conn_stop = stopped.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, std::convert::Infallible>(gateway.handle(request).await) }
            });
            let conn = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = conn_stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    // Let open connections finish the request they are on (they were told to stop).
    let drained = slots.acquire_many(MAX_CONNECTIONS_PER_THREAD as u32);
    let _ = tokio::time::timeout(DRAIN_LIMIT, drained).await;
    heartbeat.abort();
}

/// Keeps a timer due within [`HEARTBEAT`] on this thread's runtime. Every
/// request sets timeouts; when one is due sooner than anything the timer
/// wheel holds (a quiet moment, nothing else in flight), tokio wakes its
/// own driver through an eventfd: two system calls a request at low load.
/// With this heartbeat a request's timeout is never the soonest. Each beat
/// also closes this thread's long-idle model-server connections.
pub(crate) async fn keep_a_timer_due() {
    let mut beat = tokio::time::interval(HEARTBEAT);
    loop {
        let now = beat.tick().await;
        crate::upstream::close_stale(now.into_std());
    }
}

const HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(250);
