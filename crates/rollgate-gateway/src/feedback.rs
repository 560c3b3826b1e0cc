//! `POST /feedback`: a rating or a complaint about one response, by its
//! `x-request-id`, credited to the version that served it so the judge can
//! compare quality and complaints between canary and baseline.

use crate::proxy::{ProxyBody, error, full};
use crate::stats::Series;
use foldhash::fast::RandomState;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    request_id: String,
    /// 0 (bad) to 5 (good).
    #[serde(default)]
    rating: Option<u8>,
    #[serde(default)]
    complaint: bool,
}

/// Request ids with the series that served them, and their arrival order.
/// Hashed with foldhash (randomly seeded, like std's, but several times
/// cheaper than SipHash): this runs for every request.
#[derive(Default)]
struct Served {
    by_id: HashMap<HeaderValue, Arc<Series>, RandomState>,
    order: VecDeque<HeaderValue>,
}

/// Shards, so that threads recording different requests rarely meet on a lock.
const SHARDS: usize = 16;

/// Which series served each recent request; the oldest are forgotten first.
pub struct Feedback {
    capacity_per_shard: usize,
    hasher: RandomState,
    shards: [Mutex<Served>; SHARDS],
}

impl Feedback {
    /// Remembers about `capacity` recent requests (each shard keeps its share).
    pub fn new(capacity: usize) -> Feedback {
        Feedback {
            capacity_per_shard: capacity.div_ceil(SHARDS),
            hasher: RandomState::default(),
            shards: std::array::from_fn(|_| Mutex::new(Served::default())),
        }
    }

    fn shard(&self, request_id: &HeaderValue) -> &Mutex<Served> {
        let hash = self.hasher.hash_one(request_id.as_bytes());
        &self.shards[(hash % SHARDS as u64) as usize]
    }

    pub fn remember(&self, request_id: &HeaderValue, series: Arc<Series>) {
        let mut served = self.shard(request_id).lock().unwrap_or_else(PoisonError::into_inner);
        if served.by_id.insert(request_id.clone(), series).is_none() {
            served.order.push_back(request_id.clone());
        }
        while served.order.len() > self.capacity_per_shard {
            if let Some(old) = served.order.pop_front() {
                served.by_id.remove(&old);
            }
        }
    }

    fn find(&self, request_id: &str) -> Option<Arc<Series>> {
        let key = HeaderValue::from_str(request_id).ok()?;
        self.shard(&key).lock().unwrap_or_else(PoisonError::into_inner).by_id.get(&key).cloned()
    }

    pub async fn receive(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let body = match Limited::new(request.into_body(), 64 * 1024).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "feedback_too_large",
                    None,
                    "feedback bodies are at most 64 KiB",
                );
            }
        };
        let feedback: FeedbackBody = match serde_json::from_slice(&body) {
            Ok(f) => f,
            Err(e) => {
                let detail =
                    format!("send {{\"request_id\": \"…\", \"rating\": 0..5, \"complaint\": true|false}}: {e}");
                return error(StatusCode::BAD_REQUEST, "bad_feedback", None, &detail);
            }
        };
        if feedback.rating.is_some_and(|r| r > 5) || (feedback.rating.is_none() && !feedback.complaint) {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_feedback",
                None,
                "give a rating from 0 to 5, a complaint, or both",
            );
        }
        let Some(series) = self.find(&feedback.request_id) else {
            let detail = "no recent response has this request id (ids are kept for the last 100000 requests)";
            return error(StatusCode::NOT_FOUND, "unknown_request", None, detail);
        };
        series.feedback(feedback.rating, feedback.complaint);
        let mut response = Response::new(full(r#"{"accepted":true}"#));
        *response.status_mut() = StatusCode::ACCEPTED;
        response
    }
}
