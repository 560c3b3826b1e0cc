//! Talking to a rollgate server: bearer token, JSON in and out, and
//! problem+json errors turned into messages (exit code 3 for a refusal,
//! 1 when the server or the network fails).

use crate::Refused;
use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// The token: the flag or ROLLGATE_TOKEN, else ~/.config/rollgate/token.
fn find_token(given: Option<String>) -> anyhow::Result<String> {
    if let Some(token) = given.filter(|t| !t.trim().is_empty()) {
        return Ok(token.trim().to_string());
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let path = std::path::Path::new(&home).join(".config/rollgate/token");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        _ => Err(Refused(format!(
            "no API token: pass --token, set ROLLGATE_TOKEN, or write it to {} (create one with `rollgate token create`)",
            path.display()
        ))
        .into()),
    }
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
        Ok(Client { base: server.trim_end_matches('/').to_string(), token: find_token(token)?, http })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send::<(), T>(Method::GET, path, None).await
    }

    /// An answer that is not JSON (a Markdown or HTML page), as text.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the rollgate server at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("reading the answer from {url}"))?;
        if status.is_success() { Ok(text) } else { Err(problem(status, &text)) }
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// A flag's OFREP evaluation: the protocol's answer, a value or an error code (both JSON, by its rules).
    pub async fn ofrep(&self, key: &str, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/ofrep/v1/evaluate/flags/{key}", self.base);
        let response = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the rollgate server at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("reading the answer from {url}"))?;
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(answer) if status.is_success() || answer.get("errorCode").is_some() => Ok(answer),
            _ => Err(problem(status, &text)),
        }
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        self.send(Method::PUT, path, Some(body)).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response =
            request.send().await.with_context(|| format!("cannot reach the rollgate server at {}", self.base))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("reading the answer from {url}"))?;
        if status.is_success() {
            return serde_json::from_str(&text).with_context(|| format!("unexpected answer from {url}: {text}"));
        }
        Err(problem(status, &text))
    }
}

/// A problem+json answer as a message; its detail already lists any blocking gates.
fn problem(status: StatusCode, text: &str) -> anyhow::Error {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let message =
        value["detail"].as_str().map_or_else(|| format!("HTTP {status}: {text}"), |d| format!("refused: {d}"));
    if status.is_client_error() { Refused(message).into() } else { anyhow::anyhow!(message) }
}
