//! SARIF 2.1.0 output of `kvmtune audit --format sarif`, for code-scanning UIs in CI.

use serde_json::{Value, json};

use kvmtune_core::audit::AuditReport;
use kvmtune_rules::audit::{Severity, rules};

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warn => "warning",
        Severity::Info => "note",
    }
}

pub fn sarif(r: &AuditReport) -> Value {
    sarif_of(&[(None, r)])
}

/// One SARIF run over several hosts' audits: each result names its host in a logical
/// location (kind `resource`, before the element), in its properties (`host`), in its
/// message, and in its artifact URI (`HOST/DOMAIN.xml`).
pub fn sarif_hosts(reports: &[(&str, &AuditReport)]) -> Value {
    let list: Vec<(Option<&str>, &AuditReport)> =
        reports.iter().map(|(h, r)| (Some(*h), *r)).collect();
    sarif_of(&list)
}

fn sarif_of(reports: &[(Option<&str>, &AuditReport)]) -> Value {
    let all = rules();
    let index = |id: &str| all.iter().position(|x| x.meta.id == id);
    let rule_list: Vec<Value> = all
        .iter()
        .map(|x| {
            json!({
                "id": x.meta.id,
                "name": x.meta.title,
                "shortDescription": {"text": x.meta.title},
                "fullDescription": {"text": x.meta.why},
                "help": {"text": format!("Fix: {}\nClass: {}\nRisk: {}\nSource: {}", x.meta.fix, x.meta.class, x.meta.risk, x.meta.source)},
                "defaultConfiguration": {"level": level(x.meta.severity)},
                "properties": {"class": x.meta.class},
            })
        })
        .collect();
    let mut results = Vec::new();
    for (host, r) in reports {
        results.extend(report_results(*host, r, &index));
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "kvmtune",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/kvmtune",
                "rules": rule_list,
            }},
            "results": results,
        }],
    })
}

/// Put the host into a result: a logical location first, a property, and the message.
fn with_host(mut v: Value, host: Option<&str>) -> Value {
    let Some(host) = host else { return v };
    if let Some(Value::Array(locs)) = v.get_mut("locations") {
        for loc in locs {
            let mut logical =
                vec![json!({"name": host, "fullyQualifiedName": host, "kind": "resource"})];
            if let Some(Value::Array(old)) = loc.get_mut("logicalLocations") {
                for l in old.iter_mut() {
                    if let Some(Value::String(f)) = l.get_mut("fullyQualifiedName") {
                        *f = format!("{host}:{f}");
                    }
                }
                logical.append(old);
            }
            loc["logicalLocations"] = json!(logical);
            if let Some(Value::String(u)) =
                loc.pointer_mut("/physicalLocation/artifactLocation/uri")
            {
                *u = format!("{host}/{u}");
            }
        }
    }
    if let Some(Value::String(t)) = v.pointer_mut("/message/text") {
        *t = format!("{host}: {t}");
    }
    match v.get_mut("properties") {
        Some(Value::Object(p)) => {
            p.insert("host".into(), json!(host));
        }
        _ => v["properties"] = json!({"host": host}),
    }
    v
}

fn report_results(
    host: Option<&str>,
    r: &AuditReport,
    index: &dyn Fn(&str) -> Option<usize>,
) -> Vec<Value> {
    let mut results = Vec::new();
    for d in &r.domains {
        // findings of a file point into it; libvirt and bundle domains have no file
        let uri = match d.origin.strip_prefix("file:") {
            Some(p) => p.to_string(),
            None => format!("{}.xml", d.name),
        };
        for f in &d.findings {
            let ev = f.evidence.first();
            let mut loc = json!({
                "physicalLocation": {"artifactLocation": {"uri": uri}},
                "logicalLocations": [{"fullyQualifiedName": ev.map(|e| e.path.clone()).unwrap_or_default(), "kind": "element"}],
            });
            if let Some(line) = ev.and_then(|e| e.line) {
                loc["physicalLocation"]["region"] = json!({"startLine": line});
            }
            let mut text = format!("{}: {}", d.name, f.message);
            if let Some(fix) = &f.fix {
                text.push_str(&format!(". Fix: {} ({})", fix.summary, fix.command));
            }
            results.push(with_host(json!({
                "ruleId": f.rule,
                "ruleIndex": index(f.rule),
                "level": level(f.severity),
                "message": {"text": text},
                "locations": [loc],
                "properties": {
                    "domain": d.name, "profile": d.profile, "suspect": f.suspect, "assumed": f.assumed,
                    "class": f.fix.as_ref().map(|x| x.class),
                    "risk": f.fix.as_ref().map(|x| x.risk.as_str()),
                },
            }), host));
        }
    }
    for f in &r.host_findings {
        results.push(with_host(json!({
            "ruleId": f.rule,
            "ruleIndex": index(f.rule),
            "level": level(f.severity),
            "message": {"text": format!("host: {}", f.message)},
            "locations": [{"logicalLocations": [{"fullyQualifiedName": f.evidence.first().map(|e| e.path.clone()).unwrap_or_default(), "kind": "resource"}]}],
        }), host));
    }
    results
}
