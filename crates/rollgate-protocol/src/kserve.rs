//! KServe v2 / Open Inference Protocol answers: `outputs`, each a named
//! tensor with its shape, datatype and flat row-major `data`.

use crate::{ProtocolError, Tensor, TensorData, json, kind_of, lenient};
use serde_json::Value;

pub fn parse(body: &[u8]) -> Result<Vec<Tensor>, ProtocolError> {
    let v = json(&lenient::quote_non_finite(body))?;
    let outputs = match v.get("outputs") {
        Some(Value::Array(outputs)) => outputs,
        Some(other) => {
            return Err(ProtocolError::WrongType {
                field: "outputs".into(),
                expected: "an array",
                found: kind_of(other),
            });
        }
        None => return Err(ProtocolError::Missing("outputs".into())),
    };
    outputs.iter().enumerate().map(|(i, o)| tensor(i, o)).collect()
}

fn tensor(i: usize, o: &Value) -> Result<Tensor, ProtocolError> {
    let field = |f: &str| format!("outputs[{i}].{f}");
    let name = o.get("name").and_then(Value::as_str).ok_or_else(|| ProtocolError::Missing(field("name")))?.to_string();
    let datatype =
        o.get("datatype").and_then(Value::as_str).ok_or_else(|| ProtocolError::Missing(field("datatype")))?.to_string();
    let shape = o
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| ProtocolError::Missing(field("shape")))?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| ProtocolError::WrongType {
            field: field("shape"),
            expected: "a list of sizes",
            found: "something else".into(),
        })?;
    let raw = o.get("data").ok_or_else(|| ProtocolError::Missing(field("data")))?;
    // Data may be nested as the shape; it is read flat, row-major.
    let mut flat = Vec::new();
    flatten(raw, &mut flat);
    let data = match datatype.as_str() {
        "BYTES" => TensorData::Strings(flat.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect()),
        "BOOL" => TensorData::Bools(flat.iter().map(|v| v.as_bool().unwrap_or(false)).collect()),
        _ => TensorData::Numbers(flat.iter().map(lenient::number).collect::<Option<Vec<f64>>>().ok_or_else(|| {
            ProtocolError::WrongType { field: field("data"), expected: "numbers", found: "a value that is not".into() }
        })?),
    };
    let expected = shape.iter().product::<usize>();
    if data.len() != expected {
        return Err(ProtocolError::Shape { name, shape, expected, found: data.len() });
    }
    Ok(Tensor { name, shape, datatype, data })
}

pub(crate) fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        other => out.push(other.clone()),
    }
}
