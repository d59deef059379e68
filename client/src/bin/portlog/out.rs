//! Output: JSON with `--json` (one object, or JSON lines), plain text otherwise.

use serde_json::Value;
use std::io::Write;

/// Prints one object.
pub fn object(json: bool, v: &Value) {
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{v}");
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Array(items) => {
                        let _ = writeln!(out, "{k}: {}", if items.is_empty() { "none" } else { "" });
                        for i in items {
                            let _ = writeln!(out, "  {}", plain(i));
                        }
                    }
                    _ => {
                        let _ = writeln!(out, "{k}: {}", plain(v));
                    }
                }
            }
        }
        other => {
            let _ = writeln!(out, "{}", plain(other));
        }
    }
}

/// Prints one line of a many-object answer.
pub fn line(json: bool, v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = if json { writeln!(out, "{v}") } else { writeln!(out, "{}", plain(v)) };
}

/// A value as plain text: strings bare, null as `-`, objects as tab-separated values.
pub fn plain(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Object(m) => m.values().map(plain).collect::<Vec<_>>().join("\t"),
        Value::Array(a) => a.iter().map(plain).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
