//! Reading a spec from JSON with errors in the spec's words: the field's path, and what it
//! should be ("a number", "a whole number", "an object such as ...") rather than serde's Rust
//! names ("expected f64", "expected struct StrategySpec", "unknown variant").

use serde::de::DeserializeOwned;

use super::SpecError;
use crate::suggest::did_you_mean;

/// Deserializes `value` into a spec type (a [`BacktestSpec`](super::BacktestSpec), a sweep's
/// keys, ...). An error names the offending field (`execution.fees`; for a missing field, the
/// field itself) and says what it should be.
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let parent = if path == "." { String::new() } else { path };
        let (field, message) = in_spec_words(&parent, &e.into_inner().to_string());
        SpecError::new(field, message)
    })
}

/// serde_json's message about the field at `path`, as (the field, what is wrong with it).
fn in_spec_words(path: &str, serde: &str) -> (String, String) {
    let join = |name: &str| match path {
        "" => name.to_owned(),
        _ if path.ends_with(&format!(".{name}")) || path == name => path.to_owned(),
        _ => format!("{path}.{name}"),
    };
    if let Some(name) = quoted_after(serde, "missing field ") {
        return (join(&name), "required".to_owned());
    }
    if let Some(name) = quoted_after(serde, "unknown field ") {
        let known = quoted_all(after_expected(serde));
        let message = match known.is_empty() {
            true => format!("unknown field '{name}'; this object takes no fields"),
            false => format!(
                "unknown field '{name}'{}; the fields here are {}",
                did_you_mean(&name, known.iter().map(String::as_str)),
                known.join(", ")
            ),
        };
        return (join(&name), message);
    }
    if let Some(value) = quoted_after(serde, "unknown variant ") {
        let known = quoted_all(after_expected(serde));
        let message = format!(
            "unknown value '{value}'{}; expected one of {}",
            did_you_mean(&value, known.iter().map(String::as_str)),
            known.join(", ")
        );
        return (path.to_owned(), message);
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = serde.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.split_once(", expected ") {
                let message = format!(
                    "must be {}, not {}",
                    expected_words(expected),
                    found_words(found)
                );
                return (path.to_owned(), message);
            }
        }
    }
    if let Some(name) = serde.strip_prefix("data did not match any variant of untagged enum ") {
        let message = match name.trim() {
            "GridValues" => "must be a list of numbers ([5, 10, 20]), a range as text \
                             (\"5:50:5\": start, stop, step) or one number"
                .to_owned(),
            "LengthText" => "must be a bar count (500 or \"500\") or a duration as text \
                             (\"365d\", \"12w\", \"36h\", \"90m\")"
                .to_owned(),
            _ => "is none of the forms this field takes".to_owned(),
        };
        return (path.to_owned(), message);
    }
    (path.to_owned(), serde.replace('`', "'"))
}

/// The name in backticks right after `prefix` at the start of `text`.
fn quoted_after(text: &str, prefix: &str) -> Option<String> {
    let rest = text.strip_prefix(prefix)?.strip_prefix('`')?;
    Some(rest.split('`').next()?.to_owned())
}

/// What follows "expected " in a serde message ("one of `a`, `b`", "`a` or `b`").
fn after_expected(text: &str) -> &str {
    text.split_once("expected ").map_or("", |(_, rest)| rest)
}

/// Every name in backticks in `text`.
fn quoted_all(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// serde's "expected ..." in the spec's words.
fn expected_words(expected: &str) -> String {
    let words = match expected.trim() {
        "f64" | "f32" => "a number",
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "a boolean" => "true or false",
        "a string" | "a borrowed string" => "a string",
        "a sequence" => "a list",
        "a map" => "an object",
        "struct BacktestSpec" => {
            "a backtest spec, an object such as {\"data\": {\"dataset\": \"GOOG\"}, \
             \"strategy\": {\"template\": \"sma_cross\"}}"
        }
        "struct DataSpec" => "an object such as {\"dataset\": \"GOOG\", \"start\": \"2005-01-01\"}",
        "struct StrategySpec" => {
            "an object such as {\"template\": \"sma_cross\"} or {\"entry\": \"...\", \"exit\": \"...\"}"
        }
        "struct ExecutionSpec" => "an object such as {\"fees\": 0.001, \"size\": 1.0}",
        "struct WalkForwardSpec" => {
            "an object such as {\"in_sample\": \"500\", \"out_of_sample\": \"250\"}"
        }
        other if other.starts_with("struct ") || other.starts_with("map") => "an object",
        other => return other.replace('`', "'"),
    };
    words.to_owned()
}

/// serde's description of what was found (`string "x"`, `floating point `1.5``, `map`), as the
/// JSON it was.
fn found_words(found: &str) -> String {
    let found = found.trim();
    for prefix in [
        "string ",
        "floating point ",
        "integer ",
        "boolean ",
        "char ",
    ] {
        if let Some(value) = found.strip_prefix(prefix) {
            return value.trim_matches('`').to_owned();
        }
    }
    match found {
        "map" => "an object".to_owned(),
        "sequence" => "a list".to_owned(),
        "unit value" | "unit" => "null".to_owned(),
        other => other.replace('`', "'"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::BacktestSpec;
    use super::*;

    fn error(spec: serde_json::Value) -> SpecError {
        from_json::<BacktestSpec>(spec).unwrap_err()
    }

    fn spec_with(key: &str, value: serde_json::Value) -> serde_json::Value {
        let mut spec = json!({"data": {"dataset": "GOOG"}, "strategy": {"template": "sma_cross"}});
        spec[key] = value;
        spec
    }

    #[test]
    fn a_wrong_type_says_what_the_field_should_be_in_the_spec_words() {
        let e = error(spec_with("execution", json!({"fees": "0.1"})));
        assert_eq!(e.field, "execution.fees");
        assert_eq!(e.message, "must be a number, not \"0.1\"");

        let e = error(json!({"data": {"dataset": "GOOG"}, "strategy": "sma"}));
        assert_eq!(e.field, "strategy");
        assert!(
            e.message
                .starts_with("must be an object such as {\"template\""),
            "{e}"
        );
        assert!(e.message.ends_with("not \"sma\""), "{e}");

        let e = error(spec_with("execution", json!({"seed": -1})));
        assert_eq!(e.message, "must be a whole number, 0 or more, not -1");
        let e = error(spec_with("execution", json!({"seed": 1.5})));
        assert_eq!(e.message, "must be a whole number, 0 or more, not 1.5");
        let e = error(spec_with("periods_per_year", json!([252])));
        assert_eq!(e.message, "must be a number, not a list");
    }

    #[test]
    fn unknown_fields_and_values_get_a_suggestion() {
        let e = error(spec_with("colour", json!("blue")));
        assert_eq!(e.field, "colour");
        assert!(
            e.message
                .starts_with("unknown field 'colour'; the fields here are data, strategy"),
            "{e}"
        );

        let e = error(json!({"data": {"dataset": "GOOG"}, "strategy": {"templte": "sma_cross"}}));
        assert_eq!(e.field, "strategy.templte");
        assert!(
            e.message
                .starts_with("unknown field 'templte'; did you mean 'template'?"),
            "{e}"
        );

        let e = error(spec_with("direction", json!("lon")));
        assert_eq!(e.field, "direction");
        assert!(
            e.message.starts_with(
                "unknown value 'lon'; did you mean 'long'?; expected one of long, short"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_walk_forward_length_may_be_a_number_of_bars() {
        use crate::sweep::WalkForwardSpec;
        let walk: WalkForwardSpec =
            from_json(json!({"in_sample": 500, "out_of_sample": "90d", "step": 20})).unwrap();
        assert_eq!(
            (walk.in_sample.as_str(), walk.out_of_sample.as_str()),
            ("500", "90d")
        );
        assert_eq!(walk.step.as_deref(), Some("20"));
        let e = from_json::<WalkForwardSpec>(json!({"in_sample": [500], "out_of_sample": "90d"}))
            .unwrap_err();
        assert_eq!(e.field, "in_sample");
        assert!(
            e.message
                .starts_with("must be a bar count (500 or \"500\")"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_field_is_named_itself() {
        let e = error(json!({"data": {"dataset": "GOOG"}}));
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("strategy", "required")
        );
    }

    #[test]
    fn no_rust_names_are_left() {
        let specs = [
            json!({"data": 1, "strategy": {}}),
            json!({"data": {"dataset": ["GOOG"]}, "strategy": {}}),
            json!({"data": {}, "strategy": {"params": {"fast": "ten"}}}),
            json!({"data": {}, "strategy": {}, "execution": "fast"}),
            json!({"data": {}, "strategy": {}, "precision": 3}),
            json!([1, 2]),
            json!(null),
        ];
        for spec in specs {
            let e = error(spec);
            for rust in ["struct", "f64", "u64", "variant", "sequence", "`"] {
                assert!(!e.message.contains(rust), "{e}");
            }
        }
    }
}
