//! `logferry config-reference`: every declared configuration key ([`logferry::config::keys`]) as markdown or JSON,
//! and the generated parameter tables of docs/*.md (`--write-docs` refreshes them, `--check-docs` fails when one
//! differs from the declarations).

use crate::plan;
use logferry::config::keys::{refresh_regions, DocsRegionError, Kind};
use logferry::config::KeySet;
use std::path::{Path, PathBuf};

/// Every key set of this binary: globals, inputs and each input kind's sets, outputs and each output kind's.
pub fn key_sets() -> Vec<&'static KeySet> {
    let mut sets: Vec<&'static KeySet> = vec![&logferry::config::globals_keys::GLOBALS_KEYS];
    sets.push(&logferry_input::config::INPUT_KEYS);
    for kind in plan::input_kinds() {
        sets.extend(kind.keys().iter().copied());
    }
    sets.push(&logferry_output::config::OUTPUT_KEYS);
    sets.extend(plan::output_kinds().iter().map(|k| k.keys()));
    sets
}

/// Every key set, nested ones included (`globals.persistence`), each once.
pub fn all_key_sets() -> Vec<&'static KeySet> {
    let mut all: Vec<&'static KeySet> = Vec::new();
    let mut todo = key_sets();
    todo.reverse();
    while let Some(set) = todo.pop() {
        if all.iter().any(|s| std::ptr::eq(*s, set)) {
            continue;
        }
        all.push(set);
        for key in set.keys() {
            if let Kind::Dict(Some(nested)) = key.kind {
                todo.push(nested);
            }
        }
    }
    all
}

/// Output format of `config-reference`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Markdown,
    Json,
}

/// What `config-reference` was asked.
pub struct ReferenceArgs {
    pub format: Format,
    /// A set id or the start of one (`outputs`, `outputs.syslog`, `inputs.aws`); `None` = every set.
    pub section: Option<String>,
    /// Rewrite the generated regions of the docs pages in this directory.
    pub write_docs: Option<PathBuf>,
    /// Compare the generated regions of the docs pages in this directory with the declarations.
    pub check_docs: Option<PathBuf>,
}

/// Runs the command; the exit code: 0 done, 1 docs differ (`--check-docs`), 2 bad arguments or unreadable docs.
pub fn run(args: &ReferenceArgs) -> i32 {
    if let Some(dir) = &args.write_docs {
        return docs(dir, true);
    }
    if let Some(dir) = &args.check_docs {
        return docs(dir, false);
    }
    let sets = match select(args.section.as_deref()) {
        Ok(sets) => sets,
        Err(known) => {
            eprintln!(
                "config-reference: no key set \"{}\"; known: {}",
                args.section.as_deref().unwrap_or_default(),
                known.join(", ")
            );
            return 2;
        }
    };
    let text = match args.format {
        Format::Json => {
            let all: Vec<_> = sets.iter().map(|s| s.to_json()).collect();
            serde_json::to_string_pretty(&all).expect("JSON of declarations") + "\n"
        }
        Format::Markdown => sets
            .iter()
            .map(|set| {
                let table = set.render_markdown();
                format!("## `{}`\nWhere: {}.\n\n{table}\n", set.id, set.place)
            })
            .collect(),
    };
    // A closed pipe (`| head`) ends the output quietly.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
    0
}

/// The sets whose id is `section` or starts with `section.`; every known id when none does.
fn select(section: Option<&str>) -> Result<Vec<&'static KeySet>, Vec<&'static str>> {
    let all = all_key_sets();
    let Some(section) = section else {
        return Ok(key_sets());
    };
    let chosen: Vec<_> = all
        .iter()
        .copied()
        .filter(|s| s.id == section || s.id.starts_with(&format!("{section}.")))
        .collect();
    if chosen.is_empty() {
        Err(all.iter().map(|s| s.id).collect())
    } else {
        Ok(chosen)
    }
}

/// A docs page that could not be refreshed or checked.
#[derive(Debug, thiserror::Error)]
enum DocsError {
    #[error("cannot read the docs directory {dir}: {source}")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read or write {page}: {source}")]
    Io {
        page: PathBuf,
        source: std::io::Error,
    },
    #[error("{page}: {source}")]
    Region {
        page: PathBuf,
        source: DocsRegionError,
    },
}

/// Refreshes (`write`) or checks every `*.md` page of `dir`; prints each stale region.
fn docs(dir: &Path, write: bool) -> i32 {
    match refresh_pages(dir, write) {
        Ok(stale) if stale.is_empty() => {
            println!(
                "{}: every generated table matches the declarations",
                dir.display()
            );
            0
        }
        Ok(stale) => {
            for (page, id) in &stale {
                let verb = if write {
                    "refreshed"
                } else {
                    "differs from the declarations"
                };
                println!("{}: generated table \"{id}\" {verb}", page.display());
            }
            if write {
                0
            } else {
                println!(
                    "run `logferry config-reference --write-docs {}` to refresh them",
                    dir.display()
                );
                1
            }
        }
        Err(e) => {
            eprintln!("config-reference: {e}");
            2
        }
    }
}

fn refresh_pages(dir: &Path, write: bool) -> Result<Vec<(PathBuf, String)>, DocsError> {
    let sets = all_key_sets();
    let entries = std::fs::read_dir(dir).map_err(|source| DocsError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut pages: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    let mut stale = Vec::new();
    for page in pages {
        let io = |source| DocsError::Io {
            page: page.clone(),
            source,
        };
        let text = std::fs::read_to_string(&page).map_err(io)?;
        let (fresh, changed) =
            refresh_regions(&text, &sets).map_err(|source| DocsError::Region {
                page: page.clone(),
                source,
            })?;
        if write && fresh != text {
            std::fs::write(&page, fresh).map_err(io)?;
        }
        stale.extend(changed.into_iter().map(|r| (page.clone(), r.id)));
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logferry::config::keys::Default;
    use logferry::config::{ConfigErrorKind, Key};
    use serde_json::{json, Map, Value};

    /// The declarations agree with themselves: unique names per set, defaults within range and allowed.
    #[test]
    fn every_declaration_is_consistent() {
        for set in all_key_sets() {
            let mut names = std::collections::HashSet::new();
            for key in set.keys() {
                for name in std::iter::once(key.name).chain(key.aliases.iter().copied()) {
                    assert!(names.insert(name), "{}: {name} is declared twice", set.id);
                }
                assert!(
                    !key.meaning.is_empty(),
                    "{}.{} has no meaning",
                    set.id,
                    key.name
                );
                match (key.kind, key.default) {
                    (Kind::Int { min, max }, Default::Int(d)) => {
                        assert!((min..=max).contains(&d), "{}.{}", set.id, key.name)
                    }
                    (Kind::Float { min, max }, Default::Float(d)) => {
                        assert!((min..=max).contains(&d), "{}.{}", set.id, key.name)
                    }
                    (Kind::OneOf(allowed), Default::Text(d)) => {
                        assert!(allowed.contains(&d), "{}.{}", set.id, key.name)
                    }
                    (Kind::OneOf(_), _) => {
                        panic!("{}.{}: a choice needs a default", set.id, key.name)
                    }
                    _ => {}
                }
                assert!(
                    !(key.required && key.default != Default::None),
                    "{}.{} is mandatory and has a default",
                    set.id,
                    key.name
                );
            }
        }
    }

    /// A value of the key's declared type (its default when it has one).
    fn sample(key: &Key) -> Value {
        match (key.kind, key.default) {
            (_, Default::Bool(b)) => json!(b),
            (_, Default::Int(i)) => json!(i),
            (_, Default::Float(f)) => json!(f),
            (_, Default::Text(t)) => json!(t),
            (Kind::Bool, _) => json!(true),
            (Kind::Int { min, .. }, _) => json!(min),
            (Kind::Float { min, .. }, _) => json!(min),
            (Kind::List, _) => json!([]),
            (Kind::Dict(Some(set)), _) => Value::Object(sample_set(set)),
            (Kind::Dict(None), _) => json!({}),
            _ => json!("x"),
        }
    }

    /// Every accepted key of `set` with a sample value.
    fn sample_set(set: &KeySet) -> Map<String, Value> {
        set.keys()
            .filter(|k| k.rejected.is_none())
            .map(|k| (k.name.to_owned(), sample(k)))
            .collect()
    }

    /// A whole file holding every key of `set` where that set applies (`keys`), the rest minimal.
    fn file_with(id: &str, mut keys: Map<String, Value>) -> Value {
        let demo = json!({"demo": {"id": 1, "services": {"s": {}}}});
        let console = json!({"c": {"type": "console"}});
        let mut with = |extra: Value| {
            for (k, v) in extra.as_object().unwrap() {
                keys.insert(k.clone(), v.clone());
            }
            Value::Object(keys.clone())
        };
        let aws = |services: Value| json!({"type": "aws", "id": 1, "region": "us-east-1", "services": services});
        let alibaba = |services: Value| {
            json!({"type": "alibaba", "id": 1, "credentials": {"access_key_id": "a", "access_key_secret": "b"},
                   "services": services})
        };
        let (inputs, outputs) = match id {
            "globals" => {
                return json!({"globals": with(json!({})), "inputs": demo, "outputs": console})
            }
            "inputs" => (
                json!({"demo": with(json!({"type": "demo", "services": {"s": {}}}))}),
                console,
            ),
            "inputs.demo" => (json!({"demo": with(json!({"id": 1}))}), console),
            "inputs.demo.services" => (
                json!({"demo": {"id": 1, "services": {"s": with(json!({}))}}}),
                console,
            ),
            "inputs.aws" => (json!({"a": with(json!({"type": "aws", "id": 1}))}), console),
            "inputs.aws.credentials" => (json!({"a": aws(json!({}))}), console),
            "inputs.aws.services" => (
                json!({"a": aws(json!({"audit-events-all": with(json!({"types": ["audits_s3"]}))}))}),
                console,
            ),
            "inputs.aws.cloudtrail_api" => (
                json!({"a": aws(json!({"audit-events-all": with(json!({"types": ["audit_apis"]}))}))}),
                console,
            ),
            "inputs.aws.cloudwatch_logs" => {
                let mut input = aws(json!({"logs": with(json!({"types": ["logs"]}))}));
                input["requests_per_second"] = json!(1);
                (json!({"a": input}), console)
            }
            "inputs.aws.guardduty" => (
                json!({"a": aws(json!({"aws-guardduty": with(json!({}))}))}),
                console,
            ),
            "inputs.aws.metrics" => (
                json!({"a": aws(json!({"m": with(json!({"types": ["metrics"], "metric_namespaces": ["AWS/EC2"]}))}))}),
                console,
            ),
            "inputs.sqs_collector" => (
                json!({"q": with(json!({"type": "sqs_collector", "id": 1}))}),
                console,
            ),
            "inputs.sqs_collector.services" => {
                let input = json!({"type": "sqs_collector", "id": 1, "region": "us-east-1", "ack_messages": true,
                                   "base_url": "https://sqs.us-east-1.amazonaws.com/1/q",
                                   "services": {"s": with(json!({}))}});
                (json!({"q": input}), console)
            }
            "inputs.alibaba" => (
                json!({"al": with(json!({"type": "alibaba", "id": 1}))}),
                console,
            ),
            "inputs.alibaba.credentials" => (json!({"al": alibaba(json!({}))}), console),
            "inputs.alibaba.actiontrail" => (
                json!({"al": alibaba(json!({"t": with(json!({"type": "actiontrail"}))}))}),
                console,
            ),
            "inputs.alibaba.log_service" => (
                json!({"al": alibaba(json!({"t": with(json!({"type": "actiontrail_log_service"}))}))}),
                console,
            ),
            "inputs.alibaba.smq" => (
                json!({"al": alibaba(json!({"t": with(json!({"type": "smq"}))}))}),
                console,
            ),
            "outputs" => (
                demo,
                json!({"o": with(json!({"type": "console", "config": {}}))}),
            ),
            output => {
                let kind = output.strip_prefix("outputs.").expect("an output's set");
                let kind = if kind == "devo" { "relay" } else { kind };
                (
                    demo,
                    json!({"o": {"type": kind, "config": with(json!({}))}}),
                )
            }
        };
        json!({"inputs": inputs, "outputs": outputs})
    }

    /// Every declared key is read by the code where its set applies: present in a file, it is never reported as
    /// unknown (unless another problem of that key says why it is not used there, e.g. a Conflict).
    #[test]
    fn every_declared_key_is_read() {
        let dir = std::env::temp_dir().join(format!("cfgref-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Nested sets (`globals.persistence`) are sampled inside their parent's.
        for set in key_sets() {
            let file = dir.join(format!("{}.json", set.id));
            let root = file_with(set.id, sample_set(set));
            std::fs::write(&file, serde_json::to_string(&root).unwrap()).unwrap();
            let problems = plan::validate(&file).problems;
            let unread: Vec<_> = problems
                .iter()
                .filter(|p| p.kind == ConfigErrorKind::UnknownKey)
                .filter(|u| {
                    !problems
                        .iter()
                        .any(|p| p.path == u.path && p.kind != u.kind)
                })
                .map(|p| p.to_string())
                .collect();
            assert!(unread.is_empty(), "{}: {unread:#?}\n{root:#}", set.id);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The values of the keys declared secret are the ones the log redaction masks, and no other key is named like
    /// a secret.
    #[test]
    fn declared_secrets_are_the_redacted_ones() {
        for set in all_key_sets() {
            for key in set.keys() {
                assert_eq!(
                    key.secret,
                    logferry::redact::is_secret_key(key.name),
                    "{}.{}: declared secret {} but redaction says the opposite",
                    set.id,
                    key.name,
                    key.secret
                );
            }
        }
    }

    #[test]
    fn set_ids_are_unique() {
        let sets = all_key_sets();
        for (i, s) in sets.iter().enumerate() {
            assert!(
                !sets[i + 1..].iter().any(|o| o.id == s.id),
                "{} twice",
                s.id
            );
        }
    }
}
