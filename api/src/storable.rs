//! Text PostgreSQL refuses to store: a NUL character (`\u0000`) in a `text` column or anywhere
//! in a `jsonb` value is an error ("unsupported Unicode escape sequence"), which would reach the
//! client as a 500 after everything else was checked. Every JSON body is looked through once as
//! it is read, and such text is a 422 naming where it is.

use serde_json::Value;

use crate::error::{ApiError, FieldError};

/// Problems reported at most; a body full of NULs needs no list of every one.
const REPORTED: usize = 10;

/// Checks every string and object key in `value`: a 422 with the path of each one holding a
/// NUL (`strategy.entry`, `grid.fast[2]`), or `Ok`.
pub fn check(value: &Value) -> Result<(), ApiError> {
    let mut found = Vec::new();
    let mut path = String::new();
    look(value, &mut path, &mut found);
    if found.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(found))
    }
}

fn look(value: &Value, path: &mut String, found: &mut Vec<FieldError>) {
    if found.len() >= REPORTED {
        return;
    }
    match value {
        Value::String(text) if text.contains('\0') => found.push(nul_in(path, "this text")),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                look(item, path, found);
                path.truncate(len);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let len = path.len();
                if key.contains('\0') {
                    // The key itself cannot be named as it is: show it with the NUL escaped.
                    let shown = key.replace('\0', "\\u0000");
                    push_key(path, &shown);
                    found.push(nul_in(path, "this key"));
                } else {
                    push_key(path, key);
                    look(item, path, found);
                }
                path.truncate(len);
                if found.len() >= REPORTED {
                    return;
                }
            }
        }
        _ => {}
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn nul_in(path: &str, what: &str) -> FieldError {
    FieldError {
        field: path.to_owned(),
        message: format!(
            "{what} contains a NUL character (\\u0000), which cannot be stored; remove it"
        ),
        column: None,
        expression: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Vec<String> {
        match check(&value) {
            Ok(()) => Vec::new(),
            Err(ApiError::Validation { errors, .. }) => {
                let mut fields: Vec<String> = errors.into_iter().map(|e| e.field).collect();
                fields.sort();
                fields
            }
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn each_nul_is_named_by_its_path() {
        let body = json!({
            "strategy": {"entry": "close > 1\u{0}", "params": {"fast": 5}},
            "grid": {"fast": [5, "1\u{0}0"]},
            "bad\u{0}key": 1,
            "fine": "caf\u{e9} \u{1} \n"
        });
        assert_eq!(
            fields(body),
            ["bad\\u0000key", "grid.fast[1]", "strategy.entry"]
        );
        assert!(fields(json!({"a": [{"b": "ok"}], "c": null})).is_empty());
        assert_eq!(fields(json!("\u{0}")), [""]);
    }

    #[test]
    fn a_body_full_of_nuls_reports_ten() {
        let many: Vec<Value> = (0..1000).map(|_| json!("\u{0}")).collect();
        assert_eq!(fields(json!({"list": many})).len(), REPORTED);
    }
}
