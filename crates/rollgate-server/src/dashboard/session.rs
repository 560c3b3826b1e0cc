//! Signing in to the dashboard. The API token a person signs in with is
//! kept in a cookie the page's scripts cannot read (`HttpOnly`), sent only
//! over a secure context (`Secure`) and never on a request another site
//! starts (`SameSite=Strict`). The cookie carries its expiry and a MAC over
//! token and expiry, so a session ends when it says even if a browser keeps
//! the cookie. Every request authenticates the token again, so a revoked
//! token signs its sessions out at once.
//!
//! Every form that changes something carries a CSRF token derived from the
//! session (a MAC, so nothing is stored), and a request whose `Origin` is
//! not this server, or that the browser marks cross-site, is refused.

use axum::http::HeaderMap;
use axum::http::header::{COOKIE, HOST, ORIGIN};
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;

pub const COOKIE_NAME: &str = "rollgate_session";
/// How long a sign-in lasts.
pub const LIFETIME_SECONDS: i64 = 8 * 3600;
/// The environment variable that gives replicas (and restarts) one key, so a
/// session survives a restart and works on every replica. Without it each
/// process draws its own and a restart signs everyone out.
pub const KEY_VARIABLE: &str = "ROLLGATE_SESSION_KEY";

/// The key sessions and CSRF tokens are signed with.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// From `ROLLGATE_SESSION_KEY` (hashed to 32 bytes), or random.
    pub fn from_env_or_random() -> SessionKey {
        match std::env::var(KEY_VARIABLE) {
            Ok(text) if !text.is_empty() => SessionKey::from_secret(&text),
            _ => {
                let mut key = [0u8; 32];
                if let Err(e) = getrandom::fill(&mut key) {
                    // Without randomness a session could be forged; refuse every sign-in instead.
                    tracing::error!(error = %e, "cannot draw a session key; the dashboard will refuse every session");
                }
                SessionKey(key)
            }
        }
    }

    pub fn from_secret(secret: &str) -> SessionKey {
        use sha2::Digest;
        SessionKey(sha2::Sha256::digest(secret.as_bytes()).into())
    }

    fn mac(&self, parts: &[&str]) -> String {
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) else { return String::new() };
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        hex::encode(mac.finalize().into_bytes())
    }

    fn usable(&self) -> bool {
        self.0 != [0u8; 32]
    }

    /// The cookie's value for `token`, valid until `now + LIFETIME_SECONDS`.
    pub fn seal(&self, token: &str, now_unix: i64) -> String {
        let expires = (now_unix + LIFETIME_SECONDS).to_string();
        let mac = self.mac(&["session", token, &expires]);
        format!("{token}.{expires}.{mac}")
    }

    /// The token in a cookie value, if the value is ours and not expired.
    pub fn open<'a>(&self, value: &'a str, now_unix: i64) -> Result<&'a str, SessionError> {
        let mut parts = value.rsplitn(3, '.');
        let (Some(mac), Some(expires), Some(token)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SessionError::Malformed);
        };
        let expected = self.mac(&["session", token, expires]);
        if !self.usable() || !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return Err(SessionError::Forged);
        }
        let expires: i64 = expires.parse().map_err(|_| SessionError::Malformed)?;
        if now_unix >= expires {
            return Err(SessionError::Expired);
        }
        Ok(token)
    }

    /// The CSRF token of the session whose cookie value is `session`.
    pub fn csrf(&self, session: &str) -> String {
        self.mac(&["csrf", session])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session cookie is malformed")]
    Malformed,
    #[error("the session cookie was not made by this server")]
    Forged,
    #[error("the session expired; sign in again")]
    Expired,
}

/// The `Set-Cookie` value that signs in.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE_NAME}={value}; Path=/; Max-Age={LIFETIME_SECONDS}; HttpOnly; Secure; SameSite=Strict")
}

/// The `Set-Cookie` value that signs out.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// The session cookie's value in a request, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == COOKIE_NAME).then_some(value))
}

/// Whether the browser says this request came from this server's own pages:
/// no `Sec-Fetch-Site: cross-site`, and an `Origin`, when sent, naming the
/// host the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|site| site == "cross-site") {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TOKEN: &str = "rg_0a1b2c_5e6f";

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let key = SessionKey::from_secret("k");
        let value = key.seal(TOKEN, 1_000);
        assert_eq!(key.open(&value, 1_000), Ok(TOKEN));
        assert_eq!(key.open(&value, 1_000 + LIFETIME_SECONDS - 1), Ok(TOKEN));
        assert_eq!(key.open(&value, 1_000 + LIFETIME_SECONDS), Err(SessionError::Expired));
    }

    #[test]
    fn a_session_with_a_changed_expiry_or_another_key_is_refused() {
        let key = SessionKey::from_secret("k");
        let value = key.seal(TOKEN, 1_000);
        let (rest, mac) = value.rsplit_once('.').unwrap_or_default();
        let (token, _) = rest.rsplit_once('.').unwrap_or_default();
        let extended = format!("{token}.{}.{mac}", 1_000 + 100 * LIFETIME_SECONDS);
        assert_eq!(key.open(&extended, 2_000), Err(SessionError::Forged));
        assert_eq!(SessionKey::from_secret("other").open(&value, 1_000), Err(SessionError::Forged));
        assert_eq!(key.open("no dots here", 1_000), Err(SessionError::Malformed));
        assert_eq!(SessionKey([0; 32]).open(&SessionKey([0; 32]).seal(TOKEN, 0), 0), Err(SessionError::Forged));
    }

    #[test]
    fn the_csrf_token_belongs_to_one_session() {
        let key = SessionKey::from_secret("k");
        let (one, two) = (key.seal(TOKEN, 1_000), key.seal(TOKEN, 1_001));
        assert_eq!(key.csrf(&one), key.csrf(&one));
        assert_ne!(key.csrf(&two), key.csrf(&one));
        assert_ne!(SessionKey::from_secret("other").csrf(&one), key.csrf(&one));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_carries_its_protections() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; rollgate_session=abc.1.ff; b=2"));
        assert_eq!(cookie(&headers), Some("abc.1.ff"));
        let set = set_cookie("v");
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age=28800"] {
            assert!(set.contains(attribute), "{set} lacks {attribute}");
        }
    }

    #[test]
    fn only_requests_from_this_servers_pages_are_same_origin() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])), "no Origin: a form without one, or curl");
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")])));
    }
}
