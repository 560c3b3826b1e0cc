//! One suite, run against both stores: SQLite in a temporary data directory
//! and PostgreSQL in a fresh database on the server at 127.0.0.1:5432
//! (override with ROLLGATE_TEST_POSTGRES).

use rollgate_core::Timestamp;
use rollgate_core::event::{EventBody, RecordedEvent};
use rollgate_core::plan::Plan;
use rollgate_core::roles::{Actor, Role};
use rollgate_core::rollout::{Command, Effect, Input};
use rollgate_store::{
    Analysis, AnalysisRecord, AnalysisStore, Delivery, DeliveryStore, EffectKey, EffectSink, EventStore, PgStore,
    Rollouts, SqliteStore, StoreError, SubmitError, carry_out_pending,
};
use std::sync::{Arc, Mutex};

const THURSDAY: &str = "2026-11-26T09:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn start_command(id: &str) -> Command {
    Command::new(
        Actor::new("alice", [Role::Deployer]),
        Input::Start {
            rollout_id: id.into(),
            service: "fraud".into(),
            candidate: "v2".into(),
            stable: "v1".into(),
            plan_name: "default".into(),
            plan: Box::new(Plan::default()),
            skip_shadow: true,
            ticket: None,
            pool: None,
        },
    )
}

fn abort() -> Command {
    Command::new(Actor::new("alice", [Role::Deployer]), Input::Abort { reason: "test".into() })
}

fn evidence(gate: &str) -> Command {
    Command::new(
        Actor::system(),
        Input::Evidence { gate: gate.into(), passed: true, summary: "ok".into(), details: serde_json::Value::Null },
    )
}

fn body(command: Command) -> EventBody {
    EventBody { at: at(THURSDAY), command, effects: Vec::new() }
}

/// A sink that remembers every delivery, for checking what was carried out.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<(String, Effect)>>>);

impl EffectSink for Recorder {
    async fn carry_out(&self, key: &EffectKey, effect: &Effect) -> Result<(), String> {
        self.0.lock().unwrap().push((key.to_string(), effect.clone()));
        Ok(())
    }
}

async fn appends_and_reads_back_in_order<S: EventStore>(store: S) {
    let first = RecordedEvent::first("r1", &body(start_command("r1")));
    let second = RecordedEvent::seal("r1", 2, &first.hash, &body(evidence("validation.bias")));
    store.append(&[first.clone(), second.clone()]).await.unwrap();
    let other = RecordedEvent::first("r0", &body(start_command("r0")));
    store.append(std::slice::from_ref(&other)).await.unwrap();
    assert_eq!(store.read("r1").await.unwrap(), vec![first, second]);
    assert_eq!(store.streams().await.unwrap(), ["r0", "r1"]);
    assert!(store.read("nope").await.unwrap().is_empty());
}

async fn two_writers_can_never_both_append_event_n<S: EventStore + 'static>(store: S) {
    let store = Arc::new(store);
    let first = RecordedEvent::first("r1", &body(start_command("r1")));
    store.append(std::slice::from_ref(&first)).await.unwrap();
    // Eight writers race to append event 2, each with a different body.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, first) = (store.clone(), first.clone());
        tasks.push(tokio::spawn(async move {
            let e = RecordedEvent::seal("r1", 2, &first.hash, &body(evidence(&format!("validation.w{i}"))));
            store.append(&[e]).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(e) => assert!(e.is_conflict(), "a loser must see a conflict, not {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.read("r1").await.unwrap().len(), 2);
}

async fn stale_or_broken_batches_write_nothing<S: EventStore>(store: S) {
    let first = RecordedEvent::first("r1", &body(start_command("r1")));
    store.append(std::slice::from_ref(&first)).await.unwrap();
    // Skipping ahead, or chaining to the wrong hash, is a conflict.
    let gap = RecordedEvent::seal("r1", 3, &first.hash, &body(evidence("validation.bias")));
    assert!(matches!(store.append(&[gap]).await, Err(StoreError::Conflict { head_seq: 1, .. })));
    let wrong_chain = RecordedEvent::seal("r1", 2, "beef", &body(evidence("validation.bias")));
    assert!(store.append(&[wrong_chain]).await.unwrap_err().is_conflict());
    // A batch that is not consecutive is refused before touching the database.
    let a = RecordedEvent::seal("r1", 2, &first.hash, &body(evidence("validation.bias")));
    let b = RecordedEvent::seal("r1", 4, &a.hash, &body(evidence("validation.safety")));
    assert!(matches!(store.append(&[a, b]).await, Err(StoreError::MalformedBatch)));
    assert_eq!(store.read("r1").await.unwrap().len(), 1);
}

async fn effect_progress_only_moves_forward<S: EventStore>(store: S) {
    assert_eq!(store.effects_done("r1").await.unwrap(), 0);
    store.mark_effects_done("r1", 3).await.unwrap();
    store.mark_effects_done("r1", 2).await.unwrap();
    assert_eq!(store.effects_done("r1").await.unwrap(), 3);
    store.mark_effects_done("r1", 5).await.unwrap();
    assert_eq!(store.effects_done("r1").await.unwrap(), 5);
}

async fn concurrent_submits_all_land_and_the_log_replays<S: EventStore + 'static>(store: S) {
    let rollouts = Arc::new(Rollouts::new(store));
    rollouts.submit("r1", &start_command("r1"), at(THURSDAY)).await.unwrap();
    let gates = ["validation.performance", "validation.bias", "validation.safety", "validation.edge_cases"];
    let mut tasks = Vec::new();
    for gate in gates {
        let rollouts = rollouts.clone();
        tasks.push(tokio::spawn(async move { rollouts.submit("r1", &evidence(gate), at(THURSDAY)).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let events = rollouts.store().read("r1").await.unwrap();
    assert_eq!(events.len(), 5);
    assert!(rollgate_core::audit::verify_stream(&events).is_ok());
    let state = rollouts.load("r1").await.unwrap().unwrap();
    assert!(gates.iter().all(|g| state.evidence[*g].passed));
}

async fn pending_effects_are_carried_out_once_and_marked<S: EventStore>(store: S) {
    let rollouts = Rollouts::new(store);
    let submitted = rollouts.submit("r1", &start_command("r1"), at(THURSDAY)).await.unwrap();
    assert!(!submitted.effects.is_empty());
    let sink = Recorder::default();
    let carried = carry_out_pending(&rollouts, &sink).await.unwrap();
    assert_eq!(carried, submitted.effects.len());
    assert_eq!(carry_out_pending(&rollouts, &sink).await.unwrap(), 0, "nothing is carried out twice");
    let keys: Vec<String> = sink.0.lock().unwrap().iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys[0], "r1/1/0");
}

/// A sink that fails every effect of one kind, as a webhook queue that is down would.
struct Failing;

impl EffectSink for Failing {
    async fn carry_out(&self, _key: &EffectKey, effect: &Effect) -> Result<(), String> {
        match effect {
            Effect::Notify { .. } => Err("the notification queue is down".into()),
            _ => Ok(()),
        }
    }
}

async fn a_failed_effect_stays_pending_and_the_next_run_resumes_it<S: EventStore>(store: S) {
    let rollouts = Rollouts::new(store);
    let submitted = rollouts.submit("r1", &start_command("r1"), at(THURSDAY)).await.unwrap();
    assert!(submitted.effects.iter().any(|e| matches!(e, Effect::Notify { .. })));
    let failed = carry_out_pending(&rollouts, &Failing).await;
    assert!(
        matches!(failed, Err(SubmitError::Effect { ref key, .. }) if key.to_string().starts_with("r1/1/")),
        "{failed:?}"
    );
    assert_eq!(rollouts.store().effects_done("r1").await.unwrap(), 0, "the event is not marked done");
    assert_eq!(rollouts.pending().await.unwrap().len(), 1, "it is still pending");
    // The next run carries out every effect of the event (sinks drop repeats by key) and marks it.
    let sink = Recorder::default();
    assert_eq!(carry_out_pending(&rollouts, &sink).await.unwrap(), submitted.effects.len());
    assert_eq!(rollouts.store().effects_done("r1").await.unwrap(), 1);
    assert!(rollouts.pending().await.unwrap().is_empty());
}

fn busy_with(result: Result<rollgate_store::Submitted, SubmitError>) -> Option<String> {
    match result {
        Err(SubmitError::Store(StoreError::ServiceBusy { service, rollout })) => {
            assert_eq!(service, "fraud");
            Some(rollout)
        }
        _ => None,
    }
}

async fn a_service_has_one_active_rollout_at_a_time<S: EventStore>(store: S) {
    let rollouts = Rollouts::new(store);
    rollouts.submit("r1", &start_command("r1"), at(THURSDAY)).await.unwrap();
    let second = rollouts.submit("r2", &start_command("r2"), at(THURSDAY)).await;
    assert_eq!(busy_with(second).as_deref(), Some("r1"), "the refusal names the active rollout");
    assert!(rollouts.store().read("r2").await.unwrap().is_empty(), "the refused start wrote nothing");
    rollouts.submit("r1", &abort(), at(THURSDAY)).await.unwrap();
    rollouts.submit("r2", &start_command("r2"), at(THURSDAY)).await.expect("free once r1 has ended");
}

async fn of_racing_starts_exactly_one_wins<S: EventStore + 'static>(store: S) {
    let rollouts = Arc::new(Rollouts::new(store));
    for pair in 0..20 {
        let ids = [format!("a{pair}"), format!("b{pair}")];
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let (rollouts, id) = (rollouts.clone(), id.clone());
                tokio::spawn(async move { rollouts.submit(&id, &start_command(&id), at(THURSDAY)).await })
            })
            .collect();
        let mut winners = Vec::new();
        for (task, id) in tasks.into_iter().zip(&ids) {
            match task.await.unwrap() {
                Ok(_) => winners.push(id.clone()),
                Err(e) => assert!(busy_with(Err(e)).is_some(), "a loser is refused as busy"),
            }
        }
        assert_eq!(winners.len(), 1, "pair {pair}: {winners:?}");
        rollouts.submit(&winners[0], &abort(), at(THURSDAY)).await.unwrap();
    }
}

async fn heads_name_each_streams_last_event<S: EventStore>(store: S) {
    let rollouts = Rollouts::new(store);
    rollouts.submit("r1", &start_command("r1"), at(THURSDAY)).await.unwrap();
    rollouts.submit("r1", &evidence("validation.bias"), at(THURSDAY)).await.unwrap();
    rollouts.submit("r1", &abort(), at(THURSDAY)).await.unwrap();
    rollouts.submit("r0", &start_command("r0"), at(THURSDAY)).await.unwrap();
    let heads: Vec<(String, u64, String)> =
        rollouts.store().heads().await.unwrap().into_iter().map(|h| (h.stream, h.seq, h.hash)).collect();
    let store = rollouts.store();
    let (r0, r1) = (store.read("r0").await.unwrap(), store.read("r1").await.unwrap());
    assert_eq!(heads, [("r0".to_string(), 1, r0[0].hash.clone()), ("r1".to_string(), 3, r1[2].hash.clone())]);
}

async fn analyses_are_stored_apart_and_replaced<S: AnalysisStore>(store: S) {
    for kind in [Analysis::Judge, Analysis::Shadow, Analysis::Trace] {
        assert_eq!(store.analysis(kind, "r1").await.unwrap(), None);
    }
    let first = AnalysisRecord { rollout: "r1".into(), state: "{}".into(), report: "{\"a\":1}".into(), updated_ms: 5 };
    store.save_analysis(Analysis::Judge, &first).await.unwrap();
    let second = AnalysisRecord { report: "{\"a\":2}".into(), updated_ms: 6, ..first.clone() };
    store.save_analysis(Analysis::Judge, &second).await.unwrap();
    assert_eq!(store.analysis(Analysis::Judge, "r1").await.unwrap(), Some(second.clone()));
    // Each analysis is kept apart.
    assert_eq!(store.analysis(Analysis::Shadow, "r1").await.unwrap(), None);
    let shadow = AnalysisRecord { report: "{\"pairs\":3}".into(), ..first };
    store.save_analysis(Analysis::Shadow, &shadow).await.unwrap();
    assert_eq!(store.analysis(Analysis::Shadow, "r1").await.unwrap(), Some(shadow));
    assert_eq!(store.analysis(Analysis::Judge, "r1").await.unwrap(), Some(second));
}

async fn deliveries_queue_once_and_come_due_in_order<S: DeliveryStore>(store: S) {
    let delivery = |id: &str, next: i64| Delivery {
        id: id.into(),
        rollout: "r1".into(),
        sink: "http://127.0.0.1:1/hook".into(),
        body: "{}".into(),
        attempts: 0,
        next_attempt_ms: next,
        delivered_ms: None,
        gave_up: false,
        last_error: None,
    };
    store.enqueue(&delivery("r1/1/0#0", 200)).await.unwrap();
    store.enqueue(&delivery("r1/2/0#0", 100)).await.unwrap();
    // Queued again after a crash: the first one stays.
    store.enqueue(&Delivery { body: "changed".into(), ..delivery("r1/1/0#0", 0) }).await.unwrap();
    let due: Vec<String> = store.due(1000, 10).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(due, ["r1/2/0#0", "r1/1/0#0"]);
    assert!(store.due(150, 10).await.unwrap().iter().all(|d| d.id == "r1/2/0#0"));
    let mut failed = delivery("r1/2/0#0", 5000);
    failed.attempts = 1;
    failed.last_error = Some("HTTP 500".into());
    store.record_attempt(&failed).await.unwrap();
    let done = Delivery { delivered_ms: Some(900), attempts: 1, ..delivery("r1/1/0#0", 200) };
    store.record_attempt(&done).await.unwrap();
    assert!(store.due(1000, 10).await.unwrap().is_empty());
    let all = store.deliveries_for("r1").await.unwrap();
    assert_eq!(all[0].body, "{}");
    assert_eq!(all[1].last_error.as_deref(), Some("HTTP 500"));
}

/// A fresh PostgreSQL database for one test, dropped afterwards.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    async fn create() -> (PgDatabase, PgStore) {
        let admin_url = std::env::var("ROLLGATE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("rollgate_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is needed at {admin_url} ({e}); start it with .ci/run or set ROLLGATE_TEST_POSTGRES")
        });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        admin.close().await;
        let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
        let store = PgStore::connect(&url).await.unwrap();
        (PgDatabase { admin_url, name }, store)
    }

    async fn drop_now(self) {
        let admin = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&admin).await.unwrap();
    }
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = SqliteStore::open(&dir.path().join("data")).await.unwrap();
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let (db, store) = PgDatabase::create().await;
                    super::$case(store).await;
                    db.drop_now().await;
                }
            )*
        }
    };
}

suite!(
    appends_and_reads_back_in_order,
    two_writers_can_never_both_append_event_n,
    stale_or_broken_batches_write_nothing,
    effect_progress_only_moves_forward,
    concurrent_submits_all_land_and_the_log_replays,
    pending_effects_are_carried_out_once_and_marked,
    deliveries_queue_once_and_come_due_in_order,
    a_service_has_one_active_rollout_at_a_time,
    of_racing_starts_exactly_one_wins,
    heads_name_each_streams_last_event,
    a_failed_effect_stays_pending_and_the_next_run_resumes_it,
    analyses_are_stored_apart_and_replaced,
);

#[tokio::test]
async fn sqlite_keeps_the_log_across_reopening_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let rollouts = Rollouts::new(SqliteStore::open(&data).await.unwrap());
    rollouts.submit("r1", &start_command("r1"), at(THURSDAY)).await.unwrap();
    drop(rollouts);
    let reopened = Rollouts::new(SqliteStore::open(&data).await.unwrap());
    assert_eq!(reopened.load("r1").await.unwrap().unwrap().requester, "alice");
    assert!(data.join(rollgate_store::DATABASE_FILE).exists());
}

#[tokio::test]
async fn postgres_keeps_the_log_across_reconnecting() {
    let (db, store) = PgDatabase::create().await;
    let url = format!("{}/{}", db.admin_url.rsplit_once('/').unwrap().0, db.name);
    Rollouts::new(store).submit("r1", &start_command("r1"), at(THURSDAY)).await.unwrap();
    let again = Rollouts::new(PgStore::connect(&url).await.unwrap());
    assert_eq!(again.load("r1").await.unwrap().unwrap().requester, "alice");
    db.drop_now().await;
}

/// A store where every append loses the race to another writer.
struct AlwaysBeaten {
    inner: SqliteStore,
    appends: std::sync::atomic::AtomicUsize,
}

impl EventStore for AlwaysBeaten {
    async fn append_marking(
        &self,
        events: &[RecordedEvent],
        _active: Option<&rollgate_store::ActiveRollout>,
    ) -> Result<(), StoreError> {
        self.appends.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(StoreError::Conflict { stream: events[0].stream.clone(), expected: events[0].seq, head_seq: events[0].seq })
    }
    async fn heads(&self) -> Result<Vec<rollgate_core::audit::StreamHead>, StoreError> {
        self.inner.heads().await
    }
    async fn read(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read(stream).await
    }
    async fn streams(&self) -> Result<Vec<String>, StoreError> {
        self.inner.streams().await
    }
    async fn effects_done(&self, stream: &str) -> Result<u64, StoreError> {
        self.inner.effects_done(stream).await
    }
    async fn mark_effects_done(&self, stream: &str, seq: u64) -> Result<(), StoreError> {
        self.inner.mark_effects_done(stream, seq).await
    }
}

#[tokio::test]
async fn a_writer_that_keeps_losing_the_race_gives_up_with_the_conflict_after_eight_tries() {
    let dir = tempfile::tempdir().unwrap();
    let store = AlwaysBeaten { inner: SqliteStore::open(dir.path()).await.unwrap(), appends: Default::default() };
    let rollouts = Rollouts::new(store);
    let result = rollouts.submit("r1", &start_command("r1"), at(THURSDAY)).await;
    assert!(matches!(result, Err(SubmitError::Store(StoreError::Conflict { .. }))), "{result:?}");
    assert_eq!(rollouts.store().appends.load(std::sync::atomic::Ordering::SeqCst), 8);
}

#[tokio::test]
async fn one_replica_holds_the_lease_and_a_deposed_leader_cannot_write() {
    use rollgate_store::{AnyStore, Fence};
    let (db, store) = PgDatabase::create().await;
    const LEASE: &str = "reconciler";
    // A takes the lease and renews it under the same token; B cannot take it while it runs.
    assert_eq!(store.take_lease(LEASE, "a", "10.0.0.1:8080", 60_000).await.unwrap(), Some(1));
    assert_eq!(store.take_lease(LEASE, "a", "10.0.0.1:8080", 60_000).await.unwrap(), Some(1));
    assert_eq!(store.take_lease(LEASE, "b", "10.0.0.2:8080", 60_000).await.unwrap(), None);
    let holder = store.lease(LEASE).await.unwrap().unwrap();
    assert_eq!((holder.holder.as_str(), holder.token), ("a", 1));
    assert!(holder.expires_ms > holder.now_ms);

    let fence_a = Fence::new(LEASE);
    fence_a.set(1);
    let a = Rollouts::new(AnyStore::Postgres(store.clone()).fenced(fence_a.clone()));
    a.submit("r1", &start_command("r1"), at(THURSDAY)).await.unwrap();

    // A's lease runs out (as if it were paused past it); B takes over with the next token.
    assert_eq!(store.take_lease(LEASE, "a", "10.0.0.1:8080", 0).await.unwrap(), Some(1));
    assert_eq!(store.take_lease(LEASE, "b", "10.0.0.2:8080", 60_000).await.unwrap(), Some(2));
    // Every write of A's is refused from now on, whatever it is.
    let refused = a.submit("r2", &start_command("r2"), at(THURSDAY)).await;
    assert!(matches!(refused, Err(SubmitError::Store(StoreError::Fenced { held: 1, current: 2 }))), "{refused:?}");
    let a_store = a.store();
    assert!(a_store.mark_effects_done("r1", 1).await.unwrap_err().is_fenced());
    assert!(a_store.check_fence().await.unwrap_err().is_fenced());
    let analysis = AnalysisRecord { rollout: "r1".into(), state: "{}".into(), report: "{}".into(), updated_ms: 1 };
    assert!(a_store.save_analysis(Analysis::Judge, &analysis).await.unwrap_err().is_fenced());
    assert!(store.read("r2").await.unwrap().is_empty(), "nothing of A's was written");
    assert_eq!(store.effects_done("r1").await.unwrap(), 0);
    // A cannot take the lease back while B's runs; B writes under its token.
    assert_eq!(store.take_lease(LEASE, "a", "10.0.0.1:8080", 60_000).await.unwrap(), None);
    let fence_b = Fence::new(LEASE);
    fence_b.set(2);
    let b = Rollouts::new(AnyStore::Postgres(store.clone()).fenced(fence_b));
    b.store().mark_effects_done("r1", 1).await.unwrap();
    assert_eq!(store.effects_done("r1").await.unwrap(), 1);
    // A fence that holds no token writes nothing.
    fence_a.set(0);
    assert!(a.store().check_fence().await.unwrap_err().is_fenced());
    // A clean release hands over at once, with the next token.
    store.release_lease(LEASE, "b").await.unwrap();
    assert_eq!(store.take_lease(LEASE, "a", "10.0.0.1:8080", 60_000).await.unwrap(), Some(3));

    store.heartbeat("a", "10.0.0.1:8080").await.unwrap();
    store.heartbeat("b", "10.0.0.2:8080").await.unwrap();
    let members = store.members(10_000).await.unwrap();
    assert_eq!(members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    db.drop_now().await;
}

#[tokio::test]
async fn replicas_publish_their_counts_the_leader_sums_them_and_takes_each_sample_once() {
    use rollgate_core::measure::{Arm, Counters};
    use rollgate_store::{ArmKey, ArmReport, Fence, Sample, SampleKind};
    let (db, store) = PgDatabase::create().await;
    let canary = ArmKey { service: "fraud".into(), version: "v2".into(), arm: Arm::Canary };
    let report = |requests, errors, latencies: &[u32], population| ArmReport {
        key: canary.clone(),
        counters: Counters { requests, errors, ..Counters::default() },
        samples: vec![(SampleKind::Latency, Sample { values_us: latencies.to_vec(), population })],
    };
    store.publish_arms("a", &[report(10, 1, &[100, 200], 2)]).await.unwrap();
    store.publish_arms("b", &[report(5, 0, &[300], 1)]).await.unwrap();
    // A replica's counters are cumulative: its later report replaces its earlier one.
    store.publish_arms("a", &[report(12, 2, &[400], 1)]).await.unwrap();
    let totals = store.arm_totals(&canary).await.unwrap();
    assert_eq!((totals.requests, totals.errors), (17, 2));
    let other = ArmKey { arm: Arm::Stable, ..canary.clone() };
    assert_eq!(store.arm_totals(&other).await.unwrap(), Counters::default());

    // The leader takes the samples once; a leader deposed by a newer token takes none.
    assert_eq!(store.take_lease("reconciler", "a", "a:1", 60_000).await.unwrap(), Some(1));
    let fence = Fence::new("reconciler");
    fence.set(1);
    let leader = store.fenced(fence.clone());
    let mut taken: Vec<u32> =
        leader.take_arm_samples(&canary).await.unwrap().into_iter().flat_map(|(_, s)| s.values_us).collect();
    taken.sort_unstable();
    assert_eq!(taken, [100, 200, 300, 400]);
    assert!(leader.take_arm_samples(&canary).await.unwrap().is_empty(), "each sample is handed out once");
    store.publish_arms("b", &[report(6, 0, &[500], 1)]).await.unwrap();
    fence.set(0);
    assert!(leader.take_arm_samples(&canary).await.unwrap_err().is_fenced());
    fence.set(1);
    assert_eq!(leader.take_arm_samples(&canary).await.unwrap().len(), 1, "the refused take took nothing");
    db.drop_now().await;
}

#[tokio::test]
async fn followers_publish_shadow_pairs_and_the_leader_takes_each_once_in_order() {
    use rollgate_store::Fence;
    let (db, store) = PgDatabase::create().await;
    let pairs = |names: &[&str]| names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>();
    store.publish_shadow_pairs("r1", &pairs(&["a1", "a2"])).await.unwrap();
    store.publish_shadow_pairs("r2", &pairs(&["other"])).await.unwrap();
    store.publish_shadow_pairs("r1", &pairs(&["b1"])).await.unwrap();

    assert_eq!(store.take_lease("reconciler", "a", "a:1", 60_000).await.unwrap(), Some(1));
    let fence = Fence::new("reconciler");
    fence.set(1);
    let leader = store.fenced(fence.clone());
    assert_eq!(leader.take_shadow_pairs("r1").await.unwrap(), ["a1", "a2", "b1"], "oldest first, one rollout's");
    assert!(leader.take_shadow_pairs("r1").await.unwrap().is_empty(), "each pair is handed out once");
    fence.set(0);
    assert!(leader.take_shadow_pairs("r2").await.unwrap_err().is_fenced());
    fence.set(1);
    assert_eq!(leader.take_shadow_pairs("r2").await.unwrap(), ["other"], "the refused take took nothing");
    db.drop_now().await;
}
