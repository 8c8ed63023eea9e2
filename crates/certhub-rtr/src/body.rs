//! Strict JSON request bodies, with RTR's error types:
//! unparseable → `InvalidMessage`; unknown key → `UnrecognizedPropertyException`;
//! wrong type → `ConstraintViolationException`. String values are trimmed.

use axum::body::Bytes;
use certhub_app::AppError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::RtrError;

/// Largest accepted request body (a CSR with 250 names fits easily).
pub const MAX_BODY: usize = 256 * 1024;

/// Parses `bytes` as a JSON object whose keys are all in `allowed`.
/// An empty body is `{}` (SDKs send `Content-Length: 0` on body-less POSTs).
pub fn parse<T: DeserializeOwned>(bytes: &Bytes, allowed: &[&str]) -> Result<T, RtrError> {
    if bytes.len() > MAX_BODY {
        return Err(RtrError::invalid_message(format!(
            "request body larger than {MAX_BODY} bytes"
        )));
    }
    let mut value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| RtrError::invalid_message(format!("malformed JSON: {e}")))?
    };
    let Value::Object(map) = &value else {
        return Err(RtrError::invalid_message(
            "request body must be a JSON object",
        ));
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(RtrError::unrecognized_property(k));
    }
    trim_strings(&mut value);
    let de = value.clone();
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        RtrError::from(AppError::constraint(&field, e.inner().to_string(), None))
    })
}

fn trim_strings(v: &mut Value) {
    match v {
        Value::String(s) => {
            let t = s.trim();
            if t.len() != s.len() {
                *s = t.to_string();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(trim_strings),
        Value::Object(o) => o.values_mut().for_each(trim_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct T {
        a: i64,
        b: Option<String>,
    }

    #[test]
    fn strictness() {
        let ok: T = parse(&Bytes::from_static(br#"{"a":1,"b":"  x "}"#), &["a", "b"]).unwrap();
        assert_eq!(ok.b.as_deref(), Some("x"));
        let e = parse::<T>(&Bytes::from_static(br#"{"a":1,"c":2}"#), &["a", "b"]).unwrap_err();
        assert_eq!(e.body["type"], "UnrecognizedPropertyException");
        assert_eq!(e.body["property"], "c");
        let e = parse::<T>(&Bytes::from_static(br#"{"a":"x"}"#), &["a", "b"]).unwrap_err();
        assert_eq!(e.body["type"], "ConstraintViolationException");
        assert_eq!(e.body["violations"][0]["field"], "a");
        let e = parse::<T>(&Bytes::from_static(b"{nope"), &["a"]).unwrap_err();
        assert_eq!(e.body["type"], "InvalidMessage");
    }
}
