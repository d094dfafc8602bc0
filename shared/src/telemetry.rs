//! CloudWatch Embedded Metric Format: one JSON line on stdout per metric set, which CloudWatch
//! Logs turns into metrics without an API call.

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "PresenceAutopilot";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Milliseconds,
    Count,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Milliseconds => "Milliseconds",
            Self::Count => "Count",
        }
    }
}

/// The EMF document for `metrics` with `dimensions` (one dimension set).
pub fn emf_line(
    timestamp_ms: i64,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, f64, Unit)],
) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(name, _)| *name).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()})).collect::<Vec<_>>(),
            }]
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).to_owned(), Value::String((*value).to_owned()));
    }
    for (name, value, _) in metrics {
        root.insert((*name).to_owned(), json!(value));
    }
    Value::Object(root).to_string()
}

/// The error a function hands the Lambda runtime: `error_type` tells operators (and retry
/// logic reading the logs) whether the event is worth delivering again.
pub fn diagnostic(error: &dyn std::fmt::Display, retryable: bool) -> lambda_runtime::Diagnostic {
    lambda_runtime::Diagnostic {
        error_type: if retryable {
            "Retryable"
        } else {
            "NonRetryable"
        }
        .to_owned(),
        error_message: error.to_string(),
    }
}

pub fn emit(dimensions: &[(&str, &str)], metrics: &[(&str, f64, Unit)]) {
    println!(
        "{}",
        emf_line(chrono::Utc::now().timestamp_millis(), dimensions, metrics)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_declares_every_metric_and_dimension() {
        let line = emf_line(
            1_700_000_000_000,
            &[("Function", "transition")],
            &[("GenesysWriteMs", 12.0, Unit::Milliseconds)],
        );
        let doc: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(doc["Function"], "transition");
        assert_eq!(doc["GenesysWriteMs"], 12.0);
        let declared = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], NAMESPACE);
        assert_eq!(declared["Dimensions"][0][0], "Function");
        assert_eq!(declared["Metrics"][0]["Unit"], "Milliseconds");
    }
}
