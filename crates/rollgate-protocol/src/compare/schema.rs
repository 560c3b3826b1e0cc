//! Structured outputs. A chat request may ask for an answer that is JSON
//! following a schema (OpenAI's `response_format: {"type": "json_schema",
//! "json_schema": {"schema": …}}`); a plan may name one for every answer.
//! Each side's answer must then parse as JSON and follow it.

use jsonschema::Validator;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Distinct requested schemas kept compiled; past it, the cache starts over.
const KEPT: usize = 32;

/// A compiled schema.
#[derive(Clone)]
pub struct Schema(Arc<Validator>);

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schema")
    }
}

impl Schema {
    pub fn compile(schema: &Value) -> Result<Schema, String> {
        jsonschema::validator_for(schema).map(|v| Schema(Arc::new(v))).map_err(|e| e.to_string())
    }

    /// Whether `text` is JSON that follows the schema.
    pub fn accepts(&self, text: &str) -> bool {
        serde_json::from_str::<Value>(text.trim()).is_ok_and(|v| self.0.is_valid(&v))
    }
}

/// The schema a chat request asks its answer to follow, if it asks for one.
pub fn requested(request: &[u8]) -> Option<Value> {
    let request: Value = serde_json::from_slice(request).ok()?;
    let format = request.get("response_format")?;
    if format.get("type")?.as_str()? != "json_schema" {
        return None;
    }
    format.get("json_schema")?.get("schema").cloned()
}

/// The schema each request's answers are held to: the one it asks for
/// (compiled once per distinct schema), else the plan's.
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    fixed: Option<Schema>,
    /// By the schema's JSON text; `None` for one that does not compile.
    compiled: HashMap<String, Option<Schema>>,
}

impl Schemas {
    pub fn new(fixed: Option<Schema>) -> Schemas {
        Schemas { fixed, compiled: HashMap::new() }
    }

    pub fn for_request(&mut self, request: &[u8]) -> Option<Schema> {
        let Some(asked) = requested(request) else { return self.fixed.clone() };
        let key = asked.to_string();
        if let Some(known) = self.compiled.get(&key) {
            return known.clone();
        }
        if self.compiled.len() >= KEPT {
            self.compiled.clear();
        }
        let schema = Schema::compile(&asked).ok();
        self.compiled.insert(key, schema.clone());
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(schema: Value) -> Vec<u8> {
        json!({ "model": "m", "messages": [], "response_format": {
            "type": "json_schema", "json_schema": { "name": "verdict", "schema": schema } } })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_requested_schema_is_found_compiled_once_and_checked() {
        let schema = json!({ "type": "object", "required": ["label"],
                             "properties": { "label": { "enum": ["approve", "review"] } } });
        let mut schemas = Schemas::new(None);
        let found = schemas.for_request(&request(schema.clone())).unwrap();
        assert!(found.accepts(r#" {"label":"approve"} "#));
        assert!(!found.accepts(r#"{"label":"maybe"}"#), "not in the enum");
        assert!(!found.accepts(r#"{"verdict":"approve"}"#), "label missing");
        assert!(!found.accepts("approve"), "not JSON");
        schemas.for_request(&request(schema)).unwrap();
        assert_eq!(schemas.compiled.len(), 1);
        // No schema asked for, none configured: nothing to check.
        assert!(schemas.for_request(br#"{"messages":[]}"#).is_none());
        assert!(schemas.for_request(br#"{"response_format":{"type":"json_object"}}"#).is_none());
        // A schema that does not compile checks nothing (and is not compiled again).
        assert!(schemas.for_request(&request(json!({ "type": 12 }))).is_none());
        assert_eq!(schemas.compiled.len(), 2);
    }

    #[test]
    fn the_plans_schema_holds_where_the_request_names_none() {
        let fixed = Schema::compile(&json!({ "type": "array" })).unwrap();
        let mut schemas = Schemas::new(Some(fixed));
        assert!(schemas.for_request(b"{}").unwrap().accepts("[1, 2]"));
        assert!(!schemas.for_request(b"not even json").unwrap().accepts("{}"));
    }
}
