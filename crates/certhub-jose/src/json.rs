//! JSON parsing that rejects duplicate object members at every depth.
//!
//! `serde_json::Value` silently keeps the last of two equal keys. For a JWS
//! that would let two parsers disagree about e.g. which `url` or `jwk` was
//! signed, so RFC 7515 §4 allows us to reject such objects, and we do.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

use crate::JoseError;

/// Wrapper whose `Deserialize` builds a `Value` but fails on duplicate keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.insert(key.clone(), v).is_some() {
                return Err(de::Error::custom(format!("duplicate member \"{key}\"")));
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses `bytes` as a JSON object, rejecting duplicate members anywhere.
/// `what` names the object in the error detail.
pub(crate) fn parse_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, JoseError> {
    let StrictValue(value) = serde_json::from_slice(bytes)
        .map_err(|e| JoseError::malformed(format!("{what} is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(JoseError::malformed(format!(
            "{what} must be a JSON object"
        ))),
    }
}

/// Re-checks an already parsed `Value` for being an object. Values that came
/// through `serde_json` already lost any duplicates, which is the caller's
/// responsibility (the server parses request bodies with this module).
pub(crate) fn as_object<'a>(
    value: &'a Value,
    what: &str,
) -> Result<&'a Map<String, Value>, JoseError> {
    value
        .as_object()
        .ok_or_else(|| JoseError::malformed(format!("{what} must be a JSON object")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_values() {
        let m = parse_object(br#"{"a":[1,-2,3.5,true,null,"s"],"b":{"c":{}}}"#, "x").unwrap();
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"a":[1,-2,3.5,true,null,"s"],"b":{"c":{}}})
        );
    }

    #[test]
    fn rejects_duplicates_at_any_depth() {
        for bad in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"b":{"c":1,"c":1}}"#,
            br#"{"b":[{"c":1,"c":1}]}"#,
        ] {
            let err = parse_object(bad, "header").unwrap_err();
            assert!(err.detail().contains("duplicate member"), "{err}");
        }
    }

    #[test]
    fn rejects_non_objects() {
        for bad in [&b"[]"[..], b"1", b"\"s\"", b"", b"{", b"{} x"] {
            assert_eq!(
                parse_object(bad, "body").unwrap_err().acme_type(),
                "malformed"
            );
        }
    }
}
