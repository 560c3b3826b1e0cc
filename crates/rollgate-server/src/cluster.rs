//! Replicas of one control plane on PostgreSQL. Every replica serves the API
//! and routes traffic; one, the holder of the lease, runs the reconciler
//! (controller, judge, staging, deploy hooks, webhooks).
//!
//! Why a lease row rather than an advisory lock: an advisory lock lives as
//! long as one database session, so a leader whose connection is cut keeps
//! running its reconciler without knowing it lost the lock, and a pooled
//! connection hides which session holds it. A row with an expiry on the
//! database's clock, renewed every `renew`, is visible to every replica
//! (`GET /api/v1/cluster`), and its token, grown at every change of holder,
//! fences the leader's writes (see `rollgate_store::Fence`): a replica paused
//! past its lease that wakes up has every write refused and steps down.
//!
//! Followers keep their gateways on the log's routing by reading what changed
//! every tick (the data plane never waits for the control plane: a replica
//! that loses the database keeps routing at the last weights). Every replica
//! publishes what its gateway measured every tick, so the leader's judge
//! counts all traffic (`crate::shared_arms`).

use rollgate_store::{AnyStore, Fence, LogListener, PgStore, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use utoipa::ToSchema;

/// The one lease: who runs the reconciler.
pub const LEASE: &str = "reconciler";

#[derive(Debug, Clone, Copy)]
pub struct ClusterSettings {
    /// How long a lease lasts without renewal: a leader that stops renewing is
    /// replaced within `lease` + `renew`.
    pub lease: Duration,
    /// How often the lease is renewed (or, by a follower, tried).
    pub renew: Duration,
}

impl Default for ClusterSettings {
    fn default() -> ClusterSettings {
        ClusterSettings { lease: Duration::from_secs(5), renew: Duration::from_secs(1) }
    }
}

/// This replica: a random id for this process, and where its API answers.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub address: String,
}

impl Member {
    pub fn new(address: String) -> Member {
        let mut bytes = [0u8; 6];
        if getrandom::fill(&mut bytes).is_err() {
            // Two replicas must never share an id (both would think they hold the lease): fall back to the clock.
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            bytes.copy_from_slice(&nanos.as_nanos().to_le_bytes()[..6]);
        }
        Member { id: format!("rg-{}", hex::encode(bytes)), address }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub id: String,
    /// Where its API answers.
    pub address: String,
    /// Its last heartbeat (RFC 3339), on the database's clock.
    pub last_heartbeat: Option<String>,
    pub leader: bool,
}

/// The replicas as the database knows them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// `sqlite` (one server) or `postgres` (replicas).
    pub store: String,
    #[serde(rename = "self")]
    pub self_: MemberView,
    /// The replica running the reconciler, if its lease runs.
    pub leader: Option<MemberView>,
    /// The lease's fencing token: the leader's writes carry it.
    pub token: Option<i64>,
    /// Milliseconds until the lease expires unless renewed.
    pub lease_expires_in_ms: Option<i64>,
    /// Replicas with a heartbeat within three lease durations.
    pub members: Vec<MemberView>,
}

fn rfc3339(unix_ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(unix_ms).ok().map(|t| t.to_string())
}

/// What `GET /api/v1/cluster` shows.
pub async fn view(store: &AnyStore, me: &Member, settings: &ClusterSettings) -> Result<ClusterView, StoreError> {
    let AnyStore::Postgres(pg) = store else {
        let self_ = MemberView { id: me.id.clone(), address: me.address.clone(), last_heartbeat: None, leader: true };
        return Ok(ClusterView {
            store: "sqlite".into(),
            leader: Some(self_.clone()),
            self_,
            token: None,
            lease_expires_in_ms: None,
            members: Vec::new(),
        });
    };
    let lease = pg.lease(LEASE).await?.filter(|l| l.expires_ms > l.now_ms);
    let within = i64::try_from(settings.lease.as_millis() * 3).unwrap_or(i64::MAX);
    let is_leader = |id: &str| lease.as_ref().is_some_and(|l| l.holder == id);
    let members: Vec<MemberView> = pg
        .members(within)
        .await?
        .into_iter()
        .map(|m| MemberView {
            leader: is_leader(&m.id),
            last_heartbeat: rfc3339(m.heartbeat_ms),
            id: m.id,
            address: m.address,
        })
        .collect();
    let self_ = members.iter().find(|m| m.id == me.id).cloned().unwrap_or(MemberView {
        id: me.id.clone(),
        address: me.address.clone(),
        last_heartbeat: None,
        leader: is_leader(&me.id),
    });
    let leader = lease.as_ref().map(|l| {
        members.iter().find(|m| m.id == l.holder).cloned().unwrap_or(MemberView {
            id: l.holder.clone(),
            address: l.address.clone(),
            last_heartbeat: None,
            leader: true,
        })
    });
    Ok(ClusterView {
        store: "postgres".into(),
        self_,
        token: lease.as_ref().map(|l| l.token),
        lease_expires_in_ms: lease.as_ref().map(|l| l.expires_ms - l.now_ms),
        leader,
        members,
    })
}

/// Starts a reconciler writing through the given (fenced) store, fed the
/// rollouts with effects from the given channel, until its stop turns true.
pub type StartReconciler =
    Box<dyn Fn(AnyStore, mpsc::UnboundedReceiver<String>, watch::Receiver<bool>) -> Vec<JoinHandle<()>> + Send + Sync>;

/// A reconciler this replica runs while it leads.
struct Leading {
    token: i64,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Where the API's "rollout X has effects" goes: the running reconciler, or nowhere on a follower (the
/// next leader carries out what is pending when it starts, and finds other writers' events each tick).
type EffectsSink = Arc<Mutex<Option<mpsc::UnboundedSender<String>>>>;

/// Runs the lease on PostgreSQL until `stop`: heartbeats, takes or renews
/// the lease, starts the reconciler on taking it and stops it on losing it;
/// while following, keeps the fleet on the log's routing every `tick`.
pub struct Leadership {
    pub pg: PgStore,
    pub store: AnyStore,
    pub me: Member,
    pub settings: ClusterSettings,
    pub fleet: Arc<crate::fleet::Fleet>,
    pub tick: Duration,
    /// Woken on every announced append while this replica leads (its controller takes up what moved).
    pub appended: Arc<tokio::sync::Notify>,
    /// The gateway's shadow pairs: a follower publishes them for the leader's comparison.
    pub shadow: Arc<crate::shadow::ShadowPairs>,
    pub start: StartReconciler,
}

impl Leadership {
    pub fn run(
        self,
        mut effects: mpsc::UnboundedReceiver<String>,
        mut stop: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let sink: EffectsSink = Arc::new(Mutex::new(None));
        let forward = sink.clone();
        let mut forwarder_stop = stop.clone();
        let forwarder = tokio::spawn(async move {
            loop {
                let id = tokio::select! {
                    id = effects.recv() => id,
                    _ = forwarder_stop.changed() => None,
                };
                let Some(id) = id else { break };
                if let Some(to) = forward.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
                    let _ = to.send(id);
                }
            }
        });
        let leading = Arc::new(AtomicBool::new(false));
        let follow = tokio::spawn(follow(
            self.fleet.clone(),
            self.store.clone(),
            self.tick,
            (leading.clone(), self.appended.clone()),
            stop.clone(),
        ));
        let publish = tokio::spawn(publish_every(
            (self.fleet.clone(), self.pg.clone(), self.me.id.clone(), self.shadow.clone()),
            self.tick,
            stop.clone(),
        ));
        let lead = tokio::spawn(async move {
            let fence = Fence::new(LEASE);
            let lease_ms = i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX);
            let mut current: Option<Leading> = None;
            let mut renewed = Instant::now();
            loop {
                if let Err(e) = self.pg.heartbeat(&self.me.id, &self.me.address).await {
                    tracing::warn!(error = %e, "cannot record this replica's heartbeat");
                }
                match self.pg.take_lease(LEASE, &self.me.id, &self.me.address, lease_ms).await {
                    Ok(Some(token)) => {
                        renewed = Instant::now();
                        if current.as_ref().is_some_and(|l| l.token != token) {
                            // Our lease ran out and we took it again: what ran under the old token stops first.
                            step_down(&mut current, &fence, &sink, &leading).await;
                        }
                        if current.is_none() {
                            fence.set(token);
                            let (tx, rx) = mpsc::unbounded_channel();
                            *sink.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
                            let (stop_tx, stop_rx) = watch::channel(false);
                            let tasks = (self.start)(self.store.fenced(fence.clone()), rx, stop_rx);
                            leading.store(true, Ordering::Release);
                            tracing::info!(replica = %self.me.id, token, "this replica leads: the reconciler runs here");
                            current = Some(Leading { token, stop: stop_tx, tasks });
                        }
                    }
                    Ok(None) => step_down(&mut current, &fence, &sink, &leading).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take or renew the lease");
                        // Past its lease another replica may lead: stop before it does.
                        if renewed.elapsed() >= self.settings.lease {
                            step_down(&mut current, &fence, &sink, &leading).await;
                        }
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(self.settings.renew) => {}
                    _ = stop.changed() => break,
                }
            }
            let led = current.is_some();
            step_down(&mut current, &fence, &sink, &leading).await;
            if led && let Err(e) = self.pg.release_lease(LEASE, &self.me.id).await {
                tracing::warn!(error = %e, "cannot release the lease; it expires on its own");
            }
        });
        vec![lead, follow, publish, forwarder]
    }
}

/// Stops the reconciler this replica runs, if any: its writes are refused
/// from this moment (the fence holds no token), then its tasks end.
async fn step_down(current: &mut Option<Leading>, fence: &Fence, sink: &EffectsSink, leading: &AtomicBool) {
    fence.set(0);
    *sink.lock().unwrap_or_else(PoisonError::into_inner) = None;
    leading.store(false, Ordering::Release);
    let Some(old) = current.take() else { return };
    tracing::info!(token = old.token, "this replica no longer leads: its reconciler stops");
    let _ = old.stop.send(true);
    for task in old.tasks {
        let _ = task.await;
    }
}

/// Publishes what this replica's gateway measured every `tick`, leader or
/// not, for the leader's judge (see `crate::shared_arms`), and, while it
/// follows, the shadow pairs it mirrored for the leader's comparison.
async fn publish_every(
    (fleet, pg, replica, shadow): (Arc<crate::fleet::Fleet>, PgStore, String, Arc<crate::shadow::ShadowPairs>),
    tick: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = crate::shared_arms::publish(&fleet, &pg, &replica).await {
            tracing::warn!(error = %e, "cannot publish this replica's measurements; the next tick sends them");
        }
        if let Err(e) = crate::shadow::publish_followed(&fleet, &pg, &shadow).await {
            tracing::warn!(error = %e, "cannot publish this replica's shadow pairs; they are lost to the comparison");
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = stop.changed() => break,
        }
    }
}

/// A follower's routing: what other writers appended, read as soon as the
/// database announces an append (LISTEN/NOTIFY) and every `tick` anyway, so a
/// notification lost with a connection heals at the next tick.
/// While this replica leads, its controller reads (and schedules what moved) instead: it is woken.
async fn follow(
    fleet: Arc<crate::fleet::Fleet>,
    store: AnyStore,
    tick: Duration,
    (leading, appended): (Arc<AtomicBool>, Arc<tokio::sync::Notify>),
    mut stop: watch::Receiver<bool>,
) {
    let (mut listener, mut heard) = (None, false);
    loop {
        if !leading.load(Ordering::Acquire) {
            if let Err(e) = fleet.sync(&store).await {
                tracing::warn!(error = %e, "cannot read what changed in the store; routing stays as it is");
            }
        } else if heard {
            // The leader's controller reads on its own tick; an announcement only makes it read sooner.
            appended.notify_one();
        }
        if listener.is_none()
            && let AnyStore::Postgres(pg) = &store
        {
            listener =
                pg.log_listener().await.inspect_err(|e| tracing::warn!(error = %e, "cannot listen for appends")).ok();
        }
        heard = tokio::select! {
            () = tokio::time::sleep(tick) => false,
            announced = announced(&mut listener) => match announced {
                Ok(()) => true,
                Err(_) => {
                    listener = None;
                    false
                }
            },
            _ = stop.changed() => break,
        };
    }
}

/// The next append another writer announces; never, without a listener.
async fn announced(listener: &mut Option<LogListener>) -> Result<(), StoreError> {
    match listener {
        Some(listener) => listener.next().await.map(drop),
        None => std::future::pending().await,
    }
}
