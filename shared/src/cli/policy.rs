//! `autopilot policy check FILE` and `policy push FILE`: a policy file validated exactly as the functions load it
//! (offline: every key, value and message template), then its presence names resolved against
//! the org's definitions, as the first event of a cold start resolves them. A file that passes
//! here does not fail a cold start.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::output::json;
use super::{CliError, Format, Operations, Verdict};
use crate::aws::ssm::SsmPolicy;
use crate::policy::{Policy, PresenceName, Target};
use crate::ports::PolicySource;

/// Longest policy file read (a policy is a few kilobytes; this refuses a wrong path to a log).
const MAX_POLICY_BYTES: u64 = 256 * 1024;

pub async fn check(
    ops: &Operations,
    file: &Path,
    offline: bool,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let text = read(file)?;
    match validate(ops, &text, offline).await? {
        Ok((policy, resolved)) => passed(file, &policy.version, resolved.as_deref(), format, out),
        Err((by, error)) => refused(file, by, &error, format, out),
    }
}

/// `autopilot policy push FILE`: checked as `check` does (the org included: a policy the
/// functions would refuse is never stored), then stored as the parameter's next version; the
/// deciding functions take it at their next look (`PolicyRefreshSeconds`).
pub async fn push(
    ops: &Operations,
    file: &Path,
    parameter: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    let text = read(file)?;
    let policy = match validate(ops, &text, false).await? {
        Ok((policy, _)) => policy,
        Err((by, error)) => return refused(file, by, &error, format, out),
    };
    let store = SsmPolicy::new(aws_sdk_ssm::Client::new(&ops.aws), parameter);
    let revision = store
        .store(&text)
        .await
        .map_err(|e| CliError::Service(format!("policy parameter {parameter}: {e}")))?;
    if format == Format::Json {
        json(
            out,
            &json!({"file": file.display().to_string(), "parameter": parameter, "revision": revision, "version": policy.version}),
        )?;
    } else {
        writeln!(
            out,
            "{}: stored as version {revision} of {parameter} (policy {}); the functions take it at their next look",
            file.display(),
            policy.version
        )?;
    }
    Ok(Verdict::Fine)
}

/// The text as the functions load it, then (unless `offline`) its presences against the org:
/// the policy and what its names resolve to, or who refused it and why.
async fn validate(
    ops: &Operations,
    text: &str,
    offline: bool,
) -> Result<Result<(Policy, Option<Vec<Named>>), (&'static str, String)>, CliError> {
    let policy = match Policy::from_toml(text) {
        Ok(policy) => policy,
        Err(error) => return Ok(Err(("the file", error.to_string()))),
    };
    if offline {
        return Ok(Ok((policy, None)));
    }
    let definitions = ops
        .genesys()?
        .presence_definitions(ops.deadline())
        .await
        .map_err(|e| CliError::Service(format!("Genesys Cloud: {e}")))?;
    let targets = match policy.resolve(&definitions) {
        Ok(targets) => targets,
        Err(error) => return Ok(Err(("the org", error.to_string()))),
    };
    let named = |name: &PresenceName, target: &Target| Named {
        name: match name {
            PresenceName::System(system) => system.to_string(),
            PresenceName::Label(label) => label.clone(),
        },
        id: target.definition_id.as_str().to_owned(),
        label: definitions
            .iter()
            .find(|d| d.id == target.definition_id.as_str())
            .and_then(|d| {
                d.name
                    .clone()
                    .or_else(|| d.language_labels.get("en_US").cloned())
            })
            .unwrap_or_else(|| target.system_presence.to_string()),
    };
    let resolved = targets
        .iter()
        .map(|(name, target)| named(name, target))
        .collect();
    Ok(Ok((policy, Some(resolved))))
}

/// A presence the policy names, as the org knows it.
struct Named {
    /// As the policy names it.
    name: String,
    id: String,
    label: String,
}

pub(super) fn read(file: &Path) -> Result<String, CliError> {
    let cannot = |e: std::io::Error| CliError::Usage(format!("{}: {e}", file.display()));
    let size = std::fs::metadata(file).map_err(cannot)?.len();
    if size > MAX_POLICY_BYTES {
        return Err(CliError::Usage(format!(
            "{}: {size} bytes; a policy file has at most {MAX_POLICY_BYTES}",
            file.display()
        )));
    }
    std::fs::read_to_string(file).map_err(cannot)
}

/// The file passed; `resolved`: the meeting's and the focus's presences (None offline).
fn passed(
    file: &Path,
    version: &str,
    resolved: Option<&[Named]>,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    if format == Format::Json {
        let resolved = resolved.map(|named| {
            named
                .iter()
                .map(|n| {
                    (
                        n.name.clone(),
                        json!({"definitionId": n.id, "label": n.label}),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
        });
        json(
            out,
            &json!({"file": file.display().to_string(), "valid": true, "version": version, "resolved": resolved}),
        )?;
    } else {
        let against = match resolved {
            Some(named) => {
                let each: Vec<String> = named
                    .iter()
                    .map(|n| format!("{} → {} ({})", n.name, n.label, n.id))
                    .collect();
                format!("; against the org: {}", each.join(", "))
            }
            None => " (offline: presence names not resolved against the org)".to_owned(),
        };
        writeln!(out, "{}: valid, version {version}{against}", file.display())?;
    }
    Ok(Verdict::Fine)
}

pub(super) fn refused(
    file: &Path,
    by: &str,
    error: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, CliError> {
    if format == Format::Json {
        json(
            out,
            &json!({"file": file.display().to_string(), "valid": false, "refusedBy": by, "error": error}),
        )?;
    } else {
        writeln!(out, "{}: refused by {by}: {error}", file.display())?;
    }
    Ok(Verdict::Found)
}
