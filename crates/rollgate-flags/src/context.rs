//! The context a flag is evaluated for: Unleash's fields (`userId`,
//! `sessionId`, `remoteAddress`, `environment`, `appName`, `currentTime`)
//! and free-form properties. OpenFeature's context maps onto it:
//! `targetingKey` is the user id, every other attribute a property (or the
//! field of the same name).

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Context {
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub remote_address: Option<String>,
    pub environment: Option<String>,
    pub app_name: Option<String>,
    /// RFC 3339; date constraints use the caller's time without it.
    pub current_time: Option<String>,
    pub properties: BTreeMap<String, Option<String>>,
}

impl Context {
    /// The value of a context field or property, by the name a constraint or stickiness uses.
    pub fn value(&self, name: &str) -> Option<&str> {
        match name {
            "userId" => self.user_id.as_deref(),
            "sessionId" => self.session_id.as_deref(),
            "remoteAddress" => self.remote_address.as_deref(),
            "environment" => self.environment.as_deref(),
            "appName" => self.app_name.as_deref(),
            "currentTime" => self.current_time.as_deref(),
            other => self.properties.get(other).and_then(Option::as_deref),
        }
    }

    /// An OpenFeature evaluation context: `targetingKey` becomes the user id;
    /// strings, numbers and booleans become fields or properties by name;
    /// what is neither (objects, lists, null) is refused with its name.
    pub fn from_openfeature(context: &serde_json::Map<String, serde_json::Value>) -> Result<Context, String> {
        let mut out = Context::default();
        for (name, value) in context {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(format!("context attribute `{name}` must be a string, number or boolean")),
            };
            let slot = match name.as_str() {
                "targetingKey" | "userId" => &mut out.user_id,
                "sessionId" => &mut out.session_id,
                "remoteAddress" => &mut out.remote_address,
                "environment" => &mut out.environment,
                "appName" => &mut out.app_name,
                "currentTime" => &mut out.current_time,
                _ => {
                    out.properties.insert(name.clone(), Some(text));
                    continue;
                }
            };
            // An explicit `userId` wins over the targeting key.
            if name != "targetingKey" || slot.is_none() {
                *slot = Some(text);
            }
        }
        Ok(out)
    }
}
