//! A mirrored pair as text, for a follower to publish and the leader to
//! compare (`rollgate_store::PgStore::publish_shadow_pairs`). Bodies are
//! base64 (answers need not be UTF-8); headers are left out (the comparison
//! reads status, body and timings only).

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rollgate_gateway::mirror::{Captured, CopyFailure, MirrorPair};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize)]
struct Pair {
    service: String,
    primary_version: String,
    shadow_version: String,
    method: String,
    path: String,
    request_body: String,
    primary: Option<Answer>,
    shadow: Reply,
    noise: Option<Reply>,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    status: u16,
    body: String,
    truncated: bool,
    first_byte_us: u64,
    latency_us: u64,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Answer(Answer),
    Timeout { after_us: u64 },
    Failed(String),
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Answer {
    fn of(c: &Captured) -> Answer {
        Answer {
            status: c.status.as_u16(),
            body: STANDARD.encode(&c.body),
            truncated: c.truncated,
            first_byte_us: micros(c.first_byte),
            latency_us: micros(c.latency),
        }
    }

    fn captured(self) -> Option<Captured> {
        Some(Captured {
            status: StatusCode::from_u16(self.status).ok()?,
            headers: HeaderMap::new(),
            body: Bytes::from(STANDARD.decode(self.body).ok()?),
            truncated: self.truncated,
            first_byte: Duration::from_micros(self.first_byte_us),
            latency: Duration::from_micros(self.latency_us),
        })
    }
}

impl Reply {
    fn of(copy: &Result<Captured, CopyFailure>) -> Reply {
        match copy {
            Ok(c) => Reply::Answer(Answer::of(c)),
            Err(CopyFailure::Timeout(after)) => Reply::Timeout { after_us: micros(*after) },
            Err(CopyFailure::Failed(why)) => Reply::Failed(why.clone()),
        }
    }

    fn copy(self) -> Option<Result<Captured, CopyFailure>> {
        Some(match self {
            Reply::Answer(a) => Ok(a.captured()?),
            Reply::Timeout { after_us } => Err(CopyFailure::Timeout(Duration::from_micros(after_us))),
            Reply::Failed(why) => Err(CopyFailure::Failed(why)),
        })
    }
}

/// The pair as published.
pub fn encode(pair: &MirrorPair) -> String {
    let wire = Pair {
        service: pair.service.to_string(),
        primary_version: pair.primary_version.to_string(),
        shadow_version: pair.shadow_version.to_string(),
        method: pair.method.to_string(),
        path: pair.path.clone(),
        request_body: STANDARD.encode(&pair.request_body),
        primary: pair.primary.as_ref().map(Answer::of),
        shadow: Reply::of(&pair.shadow),
        noise: pair.noise.as_ref().map(Reply::of),
    };
    serde_json::to_string(&wire).unwrap_or_default()
}

/// A published pair, or `None` when the text is not one.
pub fn decode(text: &str) -> Option<MirrorPair> {
    let wire: Pair = serde_json::from_str(text).ok()?;
    Some(MirrorPair {
        service: wire.service.into(),
        primary_version: wire.primary_version.into(),
        shadow_version: wire.shadow_version.into(),
        method: Method::from_bytes(wire.method.as_bytes()).ok()?,
        path: wire.path,
        request_body: Bytes::from(STANDARD.decode(wire.request_body).ok()?),
        primary: match wire.primary {
            Some(answer) => Some(answer.captured()?),
            None => None,
        },
        shadow: wire.shadow.copy()?,
        noise: match wire.noise {
            Some(copy) => Some(copy.copy()?),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &[u8]) -> Captured {
        Captured {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::copy_from_slice(body),
            truncated: status == 200,
            first_byte: Duration::from_micros(1_234),
            latency: Duration::from_micros(5_678),
        }
    }

    #[test]
    fn a_pair_comes_back_as_it_was_published() {
        let pair = MirrorPair {
            service: "fraud".into(),
            primary_version: "v1".into(),
            shadow_version: "v2".into(),
            method: Method::POST,
            path: "/fraud/score".into(),
            request_body: Bytes::from_static(b"{\"amount\":1}"),
            primary: Some(answer(200, b"{\"label\":\"ok\"}")),
            shadow: Err(CopyFailure::Timeout(Duration::from_millis(250))),
            noise: Some(Ok(answer(503, &[0xff, 0x00, 0xfe]))),
        };
        let back = decode(&encode(&pair)).expect("a published pair decodes");
        assert_eq!((&*back.service, &*back.primary_version, &*back.shadow_version), ("fraud", "v1", "v2"));
        assert_eq!(
            (back.method, back.path.as_str(), &back.request_body[..]),
            (Method::POST, "/fraud/score", &b"{\"amount\":1}"[..])
        );
        let primary = back.primary.unwrap();
        assert_eq!(
            (primary.status, &primary.body[..], primary.truncated),
            (StatusCode::OK, &b"{\"label\":\"ok\"}"[..], true)
        );
        assert_eq!((primary.first_byte, primary.latency), (Duration::from_micros(1_234), Duration::from_micros(5_678)));
        assert_eq!(back.shadow.unwrap_err(), CopyFailure::Timeout(Duration::from_millis(250)));
        let noise = back.noise.unwrap().unwrap();
        assert_eq!(
            (noise.status.as_u16(), &noise.body[..]),
            (503, &[0xff, 0x00, 0xfe][..]),
            "bytes that are not UTF-8 survive"
        );
        assert!(decode("{\"not\":\"a pair\"}").is_none());
    }
}
