//! TF-Serving's REST answers (also KServe v1): the row format
//! `{"predictions": [instance, …]}`, each instance a value, a nested list or
//! an object of named outputs, and the columnar format `{"outputs": …}`.
//! Either becomes named tensors; `NaN` and `Infinity` tokens are accepted.

use crate::kserve::flatten;
use crate::{ProtocolError, Tensor, TensorData, json, lenient};
use serde_json::{Map, Value};

pub fn parse(body: &[u8]) -> Result<Vec<Tensor>, ProtocolError> {
    let v = json(&lenient::quote_non_finite(body))?;
    if let Some(predictions) = v.get("predictions") {
        let Value::Array(rows) = predictions else {
            return Err(ProtocolError::WrongType {
                field: "predictions".into(),
                expected: "a list of instances",
                found: crate::kind_of(predictions),
            });
        };
        return match rows.first() {
            Some(Value::Object(first)) => named_rows(rows, first),
            _ => Ok(vec![tensor("predictions", predictions)?]),
        };
    }
    match v.get("outputs") {
        Some(Value::Object(named)) => named.iter().map(|(name, value)| tensor(name, value)).collect(),
        Some(value) => Ok(vec![tensor("outputs", value)?]),
        None => Err(ProtocolError::Missing("predictions` or `outputs".into())),
    }
}

/// Rows that are objects: one tensor per key, the rows stacked.
fn named_rows(rows: &[Value], first: &Map<String, Value>) -> Result<Vec<Tensor>, ProtocolError> {
    first
        .keys()
        .map(|key| {
            let column: Vec<Value> = rows
                .iter()
                .map(|row| row.get(key).cloned().ok_or_else(|| ProtocolError::Missing(format!("predictions[].{key}"))))
                .collect::<Result<_, _>>()?;
            tensor(key, &Value::Array(column))
        })
        .collect()
}

/// A nested list (or a value) as a tensor, its shape read from the nesting.
fn tensor(name: &str, value: &Value) -> Result<Tensor, ProtocolError> {
    let mut shape = Vec::new();
    let mut level = value;
    while let Value::Array(items) = level {
        shape.push(items.len());
        match items.first() {
            Some(first) => level = first,
            None => break,
        }
    }
    let mut flat = Vec::new();
    flatten(value, &mut flat);
    let expected = shape.iter().product::<usize>();
    if flat.len() != expected {
        return Err(ProtocolError::Shape { name: name.into(), shape, expected, found: flat.len() });
    }
    let data = if flat.iter().all(Value::is_string) && !flat.iter().any(|v| lenient::number(v).is_some()) {
        TensorData::Strings(flat.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect())
    } else {
        TensorData::Numbers(flat.iter().map(lenient::number).collect::<Option<Vec<f64>>>().ok_or_else(|| {
            ProtocolError::WrongType { field: name.into(), expected: "numbers or strings", found: "a mix".into() }
        })?)
    };
    let datatype = match data {
        TensorData::Strings(_) => "BYTES",
        _ => "FP64",
    };
    Ok(Tensor { name: name.into(), shape, datatype: datatype.into(), data })
}
