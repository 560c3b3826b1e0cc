//! Notifications: the server's effect sink queues one webhook delivery per
//! notification and sink (persisted, keyed by the effect, so a crash
//! neither loses nor doubles one), and a worker delivers them off the
//! controller's path, signed, retried with exponential backoff.

use hmac::{KeyInit, Mac};
use rollgate_core::config::{Config, WebhookFormat};
use rollgate_core::rollout::NotificationKind;
use rollgate_store::{AnyStore, Delivery, DeliveryStore, EffectKey};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, watch};

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-rollgate-signature";
/// Header carrying the delivery's id: the same on every retry, so receivers can drop repeats.
pub const DELIVERY_HEADER: &str = "x-rollgate-delivery";

#[derive(Debug, Clone)]
pub struct Hook {
    pub url: String,
    pub format: WebhookFormat,
    pub secret: Option<Vec<u8>>,
    pub events: Vec<NotificationKind>,
}

impl Hook {
    /// The config's webhooks, with their keys read from the environment.
    pub fn from_config(config: &Config) -> Result<Vec<Hook>, String> {
        config
            .notifications
            .webhooks
            .iter()
            .map(|w| {
                let secret = match &w.secret_env {
                    Some(var) => Some(std::env::var(var).map(String::into_bytes).map_err(|_| {
                        format!(
                            "webhook {}: the environment variable {var} holding its signing key is not set",
                            w.url.get_ref()
                        )
                    })?),
                    None => None,
                };
                Ok(Hook { url: w.url.get_ref().clone(), format: w.format, secret, events: w.events.clone() })
            })
            .collect()
    }

    fn wants(&self, kind: NotificationKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }

    fn payload(&self, key: &EffectKey, kind: NotificationKind, message: &str) -> String {
        let body = match self.format {
            WebhookFormat::Slack => json!({ "text": message }),
            WebhookFormat::Json => {
                json!({ "id": key.to_string(), "rollout": key.stream, "kind": kind, "message": message })
            }
        };
        body.to_string()
    }
}

/// The HMAC-SHA256 signature header value of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The server's effect sink.
pub struct Notifier {
    store: AnyStore,
    hooks: Arc<Vec<Hook>>,
    wake: Arc<Notify>,
}

impl Notifier {
    pub fn new(store: AnyStore, hooks: Arc<Vec<Hook>>, wake: Arc<Notify>) -> Notifier {
        Notifier { store, hooks, wake }
    }

    /// Queues the notification of effect `key` for every webhook that wants its kind.
    pub async fn notify(&self, key: &EffectKey, kind: NotificationKind, message: &str) -> Result<(), String> {
        for (index, hook) in self.hooks.iter().enumerate().filter(|(_, h)| h.wants(kind)) {
            let delivery = Delivery {
                id: format!("{key}#{index}"),
                rollout: key.stream.clone(),
                sink: hook.url.clone(),
                body: hook.payload(key, kind, message),
                attempts: 0,
                next_attempt_ms: now_ms(),
                delivered_ms: None,
                gave_up: false,
                last_error: None,
            };
            self.store.enqueue(&delivery).await.map_err(|e| e.to_string())?;
        }
        self.wake.notify_one();
        Ok(())
    }
}

/// How deliveries are retried: `base`, 2×, 4×, … capped at `max_delay`, `max_attempts` in all.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            max_attempts: 10,
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    fn delay_after(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max_delay)
    }
}

/// Delivers due webhooks until `stop` turns true.
pub async fn deliver(
    store: AnyStore,
    hooks: Arc<Vec<Hook>>,
    wake: Arc<Notify>,
    policy: RetryPolicy,
    mut stop: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder().timeout(policy.timeout).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; notifications stay queued");
            return;
        }
    };
    while !*stop.borrow() {
        match store.due(now_ms(), 32).await {
            Ok(due) => {
                for delivery in due {
                    attempt(&store, &client, &hooks, &policy, delivery).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the delivery queue"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn attempt(store: &AnyStore, client: &reqwest::Client, hooks: &[Hook], policy: &RetryPolicy, mut d: Delivery) {
    // A replica that no longer leads sends nothing: the leader that replaced it delivers.
    if let Err(e) = store.check_fence().await {
        return tracing::warn!(delivery = %d.id, error = %e, "not sending a webhook");
    }
    let mut request = client
        .post(&d.sink)
        .header("content-type", "application/json")
        .header(DELIVERY_HEADER, &d.id)
        .body(d.body.clone());
    if let Some(key) = hooks.iter().find(|h| h.url == d.sink).and_then(|h| h.secret.as_ref()) {
        request = request.header(SIGNATURE_HEADER, signature(key, d.body.as_bytes()));
    }
    d.attempts += 1;
    let outcome = match request.send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("HTTP {}", response.status())),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(()) => {
            d.delivered_ms = Some(now_ms());
            d.last_error = None;
        }
        Err(error) => {
            tracing::warn!(delivery = %d.id, sink = %d.sink, attempts = d.attempts, %error, "webhook delivery failed");
            d.gave_up = d.attempts >= policy.max_attempts;
            let delay = i64::try_from(policy.delay_after(d.attempts).as_millis()).unwrap_or(i64::MAX);
            d.next_attempt_ms = now_ms().saturating_add(delay);
            d.last_error = Some(error);
        }
    }
    if let Err(e) = store.record_attempt(&d).await {
        tracing::warn!(delivery = %d.id, error = %e, "cannot record a delivery attempt; it will be made again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p =
            RetryPolicy { base: Duration::from_secs(1), max_delay: Duration::from_secs(10), ..RetryPolicy::default() };
        let delays: Vec<u64> = (1..=6).map(|a| p.delay_after(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn signature_matches_a_known_hmac_sha256_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
