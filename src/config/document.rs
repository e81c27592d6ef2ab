//! Reading a config document (JSON or YAML) and parsing its objects field by field, so every
//! bad field is reported rather than only the first.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::diagnostics::*;

/// Parses a JSON object into `T` field by field so every bad field is reported, not just the
/// first. Unknown keys are reported with a did-you-mean and dropped.
pub(super) fn parse_object<T: DeserializeOwned + Default>(
    value: &Value,
    known: &[String],
    path: &str,
    diags: &mut Diags,
) -> T {
    let Some(obj) = value.as_object() else {
        diags.push(path, format!("expected an object, found {}", type_name(value)));
        return T::default();
    };
    let mut known_part = Map::new();
    for (key, v) in obj {
        if known.iter().any(|k| k == key) {
            known_part.insert(key.clone(), v.clone());
        } else {
            diags.push(join(path, key), format!("unknown field `{key}`{}", hint(key, known)));
        }
    }
    // The common case, a valid object, costs one deserialization; only a failing one is taken
    // apart key by key so that every bad field is reported, not just the first.
    if let Ok(parsed) = serde_json::from_value::<T>(Value::Object(known_part.clone())) {
        return parsed;
    }
    let mut good = Map::new();
    for (key, v) in known_part {
        let single = Value::Object(Map::from_iter([(key.clone(), v.clone())]));
        match serde_json::from_value::<T>(single) {
            Ok(_) => {
                good.insert(key, v);
            }
            Err(e) => diags.push(join(path, &key), explain_serde(&e.to_string())),
        }
    }
    serde_json::from_value(Value::Object(good)).unwrap_or_default()
}

/// Reads a JSON or YAML file (by extension) into a JSON value.
pub fn read_document(file: &Path) -> Result<Value, Diagnostic> {
    let diag = |message: String| Diagnostic { file: file.to_path_buf(), field: String::new(), message };
    let text = super::limits::read_capped(file).map_err(|e| {
        diag(if e.kind() == std::io::ErrorKind::FileTooLarge {
            format!("{e}; razar refuses it before parsing")
        } else {
            format!("cannot read the file ({e}); check the path or pass --config")
        })
    })?;
    let yaml = matches!(file.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    super::limits::check_depth(&text, yaml).map_err(diag)?;
    if yaml {
        serde_norway::from_str::<Value>(&text).map_err(|e| diag(format!("malformed YAML: {e}")))
    } else {
        serde_json::from_str::<Value>(&text).map_err(|e| diag(format!("malformed JSON: {e}")))
    }
}
