//! A playbook's `[plugins.NAME]` entries: path, pin, allowed hosts, limits
//! and config, each checked where it is written.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::raw::{RawGrant, RawPlugin};
use super::spec::PluginSpec;
use crate::cloud::grant::{agent_services, AssumeRole, EvidenceUploads};
use crate::cloud::CloudGrant;
use crate::diagnostics::{parse_duration, table_to_json, Diagnostic, SourceMap};
use crate::digest::is_sha256;
use crate::egress::{EgressPolicy, HostPattern};
use crate::runtime::limits::PluginLimits;

pub(super) fn plugin_spec(
    source: &SourceMap,
    base: &Path,
    name: &str,
    span: Range<usize>,
    raw: RawPlugin,
) -> Result<PluginSpec, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let field = |f: &str| format!("plugins.{name}.{f}");
    let sha256 = raw.sha256.as_ref().and_then(|s| {
        let value = s.get_ref().to_ascii_lowercase();
        if is_sha256(&value) {
            Some(value)
        } else {
            problems.push(source.diagnostic(
                s.span(),
                &field("sha256"),
                "not a sha256 (64 hex digits)",
                Some("`sha256sum plugin.wasm` prints it"),
            ));
            None
        }
    });
    let mut egress = EgressPolicy::default();
    for host in raw.allow_hosts.iter().flatten() {
        match HostPattern::parse(host.get_ref()) {
            Ok(p) => egress.allow(p),
            Err(e) => problems.push(source.diagnostic(
                host.span(),
                &field("allow_hosts"),
                format!("`{}`: {e}", host.get_ref()),
                Some("use `host`, `host:port`, `*.example.com`, optionally with `https://`"),
            )),
        }
    }
    let mut limits = PluginLimits::default();
    if let Some(raw_limits) = &raw.limits {
        let l = raw_limits.get_ref();
        if let Some(m) = &l.memory_mb {
            if *m.get_ref() == 0 || *m.get_ref() > 4096 {
                problems.push(source.diagnostic(
                    m.span(),
                    &field("limits.memory_mb"),
                    "must be between 1 and 4096",
                    None,
                ));
            }
            limits.memory_bytes = m.get_ref() << 20;
        }
        if let Some(c) = &l.cpu_ms {
            if *c.get_ref() == 0 {
                problems.push(source.diagnostic(
                    c.span(),
                    &field("limits.cpu_ms"),
                    "must be at least 1",
                    None,
                ));
            }
            limits.cpu = Duration::from_millis(*c.get_ref());
        }
        if let Some(t) = &l.timeout {
            match parse_duration(t.get_ref()) {
                Ok(d) => limits.timeout = d,
                Err(e) => problems.push(source.diagnostic(
                    t.span(),
                    &field("limits.timeout"),
                    e,
                    Some("write a duration such as \"30s\", \"2m\" or \"500ms\""),
                )),
            }
        }
        if let Some(o) = &l.max_output_kb {
            limits.max_output_bytes = o.get_ref() << 10;
        }
    }
    if raw.path.get_ref().trim().is_empty() {
        problems.push(source.diagnostic(
            raw.path.span(),
            &field("path"),
            "empty plugin path",
            None,
        ));
    }
    let grant = raw
        .cloud
        .as_ref()
        .and_then(|g| grant(source, &field("cloud"), g, &mut problems));
    let (evidence_uploads, isolation_keeps) = match (&raw.cloud, &grant) {
        (Some(raw_grant), Some(grant)) => grant_extras(
            source,
            &field("cloud"),
            raw_grant.get_ref(),
            grant,
            &mut problems,
        ),
        _ => (None, Vec::new()),
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(PluginSpec {
        grant,
        evidence_uploads,
        isolation_keeps,
        grant_span: raw.cloud.as_ref().map_or(span.clone(), |g| g.span()),
        default_hosts: raw.allow_hosts.is_none(),
        name: name.to_string(),
        path: base.join(raw.path.get_ref()),
        path_span: raw.path.span(),
        sha256,
        egress,
        limits,
        config: table_to_json(&raw.config),
    })
}

/// The plugin's `cloud` grant, checked: exactly one cloud, known services.
fn grant(
    source: &SourceMap,
    field: &str,
    raw: &toml::Spanned<RawGrant>,
    problems: &mut Vec<Diagnostic>,
) -> Option<CloudGrant> {
    const HINT: &str = "grant one cloud and the API actions the plugin may call: cloud = { aws = [\"ec2:DescribeInstances\", \"ec2:CreateSnapshots\"] } or cloud = { azure = [\"Microsoft.Compute/virtualMachines/read\"] } (a bare service, \"ec2\", or azure = \"arm\" grants every action)";
    let g = raw.get_ref();
    let checked = match (&g.aws, &g.azure) {
        (Some(services), None) => {
            let names: Vec<&str> = services
                .get_ref()
                .iter()
                .map(|s| s.get_ref().as_str())
                .collect();
            CloudGrant::aws(&names).map_err(|e| {
                // Point at the offending entry when there is one.
                let at = services
                    .get_ref()
                    .iter()
                    .find(|s| {
                        let s = s.get_ref();
                        e.contains(&format!("`{s}`"))
                            || s.split_once(':')
                                .is_some_and(|(svc, _)| e.contains(&format!("`{svc}`")))
                    })
                    .map_or(services.span(), |s| s.span());
                (at, format!("{field}.aws"), e)
            })
        }
        (None, Some(azure)) => {
            let checked = match azure.get_ref() {
                toml::Value::String(scope) => CloudGrant::azure(scope),
                toml::Value::Array(items) => {
                    let names: Option<Vec<&str>> = items.iter().map(|v| v.as_str()).collect();
                    match names {
                        Some(names) => CloudGrant::azure_actions(&names),
                        None => Err("every ARM operation is a string".into()),
                    }
                }
                other => Err(format!(
                    "azure is \"arm\" or a list of ARM operations, not a {}",
                    other.type_str()
                )),
            };
            checked.map_err(|e| (azure.span(), format!("{field}.azure"), e))
        }
        (Some(_), Some(_)) => Err((
            raw.span(),
            field.to_string(),
            "a plugin is granted one cloud, not two".into(),
        )),
        (None, None) => Err((raw.span(), field.to_string(), "an empty grant".into())),
    };
    let checked = checked
        .and_then(|grant| with_role(field, raw, grant))
        .and_then(|grant| with_tenants(field, raw, grant));
    match checked {
        Ok(grant) => Some(grant),
        Err((span, field, message)) => {
            problems.push(source.diagnostic(span, &field, message, Some(HINT)));
            None
        }
    }
}

type Located = (Range<usize>, String, String);

/// A grant's `evidence_uploads` and `isolation_keeps`, checked against its
/// cloud.
fn grant_extras(
    source: &SourceMap,
    field: &str,
    raw: &RawGrant,
    grant: &CloudGrant,
    problems: &mut Vec<Diagnostic>,
) -> (Option<EvidenceUploads>, Vec<String>) {
    let cloud = grant.cloud();
    let uploads = raw.evidence_uploads.as_ref().and_then(|u| {
        EvidenceUploads::parse(cloud, u.get_ref())
            .map_err(|e| {
                problems.push(source.diagnostic(
                    u.span(),
                    &format!("{field}.evidence_uploads"),
                    e,
                    Some("the store the machine uploads memory images to: \"s3://BUCKET/PREFIX/\" (AWS) or \"https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX/\" (Azure)"),
                ))
            })
            .ok()
    });
    let known = agent_services(cloud);
    let mut keeps = Vec::new();
    for service in raw.isolation_keeps.iter().flat_map(|k| k.get_ref()) {
        if known.contains(&service.get_ref().as_str()) {
            keeps.push(service.get_ref().clone());
        } else {
            problems.push(source.diagnostic(
                service.span(),
                &format!("{field}.isolation_keeps"),
                format!(
                    "`{}` is not a service the {cloud} agent uploads through",
                    service.get_ref()
                ),
                Some(&format!("one of: {}", known.join(", "))),
            ));
        }
    }
    (uploads, keeps)
}

/// The grant with its `tenants` (Azure), checked.
fn with_tenants(
    field: &str,
    raw: &toml::Spanned<RawGrant>,
    mut grant: CloudGrant,
) -> Result<CloudGrant, Located> {
    let Some(tenants) = &raw.get_ref().tenants else {
        return Ok(grant);
    };
    let at = |e: String| (tenants.span(), format!("{field}.tenants"), e);
    for (subscription, tenant) in tenants.get_ref() {
        let tenant = tenant
            .as_str()
            .ok_or_else(|| at(format!("the tenant of `{subscription}` is a string")))?;
        grant = grant.with_tenant(subscription, tenant).map_err(at)?;
    }
    Ok(grant)
}

/// The grant with its `assume_role` (and the role's settings), checked.
fn with_role(
    field: &str,
    raw: &toml::Spanned<RawGrant>,
    grant: CloudGrant,
) -> Result<CloudGrant, Located> {
    let g = raw.get_ref();
    let at =
        |s: &toml::Spanned<String>, name: &str, e: String| (s.span(), format!("{field}.{name}"), e);
    let Some(arn) = &g.assume_role else {
        let stray = [
            ("external_id", &g.external_id),
            ("session_name", &g.session_name),
            ("duration", &g.duration),
        ];
        if let Some((name, Some(value))) = stray.into_iter().find(|(_, v)| v.is_some()) {
            return Err(at(
                value,
                name,
                format!("{name} is a setting of assume_role, which the grant does not name"),
            ));
        }
        return Ok(grant);
    };
    if grant.cloud() != "aws" {
        return Err(at(
            arn,
            "assume_role",
            "assume_role is for AWS grants".into(),
        ));
    }
    let mut role = AssumeRole::parse(arn.get_ref()).map_err(|e| at(arn, "assume_role", e))?;
    if let Some(id) = &g.external_id {
        role = role
            .with_external_id(id.get_ref())
            .map_err(|e| at(id, "external_id", e))?;
    }
    if let Some(name) = &g.session_name {
        role = role
            .with_session_name(name.get_ref())
            .map_err(|e| at(name, "session_name", e))?;
    }
    if let Some(d) = &g.duration {
        let duration = parse_duration(d.get_ref()).map_err(|e| at(d, "duration", e))?;
        role = role
            .with_duration(duration)
            .map_err(|e| at(d, "duration", e))?;
    }
    grant.with_role(role).map_err(|e| at(arn, "assume_role", e))
}
