//! Secrets kept out of the file: any string value may hold `${env:NAME}` (an environment variable) or
//! `${file:PATH}` (a file's content, e.g. a mounted Kubernetes or Docker secret; a relative path is resolved against
//! the config file's directory; trailing line breaks are removed). `$${` stands for a literal `${`.
//!
//! References are resolved once, when the file is loaded, before anything reads a value. Every resolved value is
//! registered with the redaction ([`crate::redact`]) whatever its key is called: a value that came from a secret
//! store is treated as a secret. A reference that cannot be resolved is a configuration problem naming the field
//! and the variable or file; the field keeps its reference text, so no second problem is reported for it.

use super::error::{ConfigError, ConfigErrorKind};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a reference reads its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reference {
    Env(String),
    File(PathBuf),
}

/// Why a reference could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceProblem {
    /// `${...` without its closing `}`; `at` counts from 1.
    Unclosed { at: usize },
    /// `${kind:...}` with a kind other than `env` or `file`.
    UnknownKind { reference: String },
    /// `${env:NAME}` whose NAME is not `[A-Za-z_][A-Za-z0-9_]*`.
    BadVariableName { name: String },
    /// `${file:}`.
    EmptyFilePath,
    /// The environment variable is not set.
    VariableNotSet { name: String },
    /// The environment variable's value is not valid UTF-8.
    VariableNotUnicode { name: String },
    /// The file cannot be read (or is not UTF-8).
    FileUnreadable { path: PathBuf, reason: String },
}

impl ReferenceProblem {
    fn kind(&self) -> ConfigErrorKind {
        match self {
            ReferenceProblem::VariableNotSet { .. } => ConfigErrorKind::Missing,
            ReferenceProblem::FileUnreadable { .. } => ConfigErrorKind::FileUnreadable,
            _ => ConfigErrorKind::InvalidValue,
        }
    }
}

impl fmt::Display for ReferenceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReferenceProblem::Unclosed { at } => {
                write!(f, "the reference at character {at} has no closing '}}' (write $${{ for a literal ${{)")
            }
            ReferenceProblem::UnknownKind { reference } => write!(
                f,
                "unknown reference \"${{{reference}}}\": use ${{env:NAME}} or ${{file:/path}} (write $${{ for a literal ${{)"
            ),
            ReferenceProblem::BadVariableName { name } => write!(
                f,
                "\"{name}\" is not an environment variable name (letters, digits and _, not starting with a digit)"
            ),
            ReferenceProblem::EmptyFilePath => write!(f, "${{file:}} names no file"),
            ReferenceProblem::VariableNotSet { name } => {
                write!(f, "environment variable {name} is not set (referenced as ${{env:{name}}})")
            }
            ReferenceProblem::VariableNotUnicode { name } => {
                write!(f, "environment variable {name} is not valid UTF-8")
            }
            ReferenceProblem::FileUnreadable { path, reason } => write!(
                f,
                "cannot read \"{}\" (referenced as ${{file:...}}): {reason}",
                path.display()
            ),
        }
    }
}

/// What resolving a whole file found.
#[derive(Debug, Default)]
pub struct Resolution {
    /// One problem per reference that could not be resolved, with the field's path.
    pub problems: Vec<ConfigError>,
    /// Every value a reference gave, with its field's path (to register as secrets): only that value, not the
    /// text around it (`redis://:${env:PW}@redis:6379` gives the password).
    pub resolved: Vec<(String, String)>,
}

/// Resolves the references in every string value of `root`, in place. `env` looks an environment variable up
/// (`std::env::var` in production; tests pass their own).
pub fn resolve(
    root: &mut Value,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Result<String, std::env::VarError>,
) -> Resolution {
    let mut resolution = Resolution::default();
    let resolver = Resolver { base_dir, env };
    resolver.walk(root, "", &mut resolution);
    resolution
}

struct Resolver<'a> {
    base_dir: &'a Path,
    env: &'a dyn Fn(&str) -> Result<String, std::env::VarError>,
}

impl Resolver<'_> {
    fn walk(&self, value: &mut Value, path: &str, out: &mut Resolution) {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    self.walk(child, &child_path, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    self.walk(child, &format!("{path}[{i}]"), out);
                }
            }
            Value::String(text) if text.contains("${") => match self.expand(text) {
                Ok((expanded, values)) => {
                    out.resolved
                        .extend(values.into_iter().map(|v| (path.to_owned(), v)));
                    *text = expanded;
                }
                Err(problems) => out.problems.extend(
                    problems
                        .into_iter()
                        .map(|p| ConfigError::new(p.kind(), path, p.to_string())),
                ),
            },
            _ => {}
        }
    }

    /// `text` with its references replaced and the values they gave, or every problem of its references.
    fn expand(&self, text: &str) -> Result<(String, Vec<String>), Vec<ReferenceProblem>> {
        let mut out = String::with_capacity(text.len());
        let mut values = Vec::new();
        let mut problems = Vec::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let after = &rest[dollar..];
            if let Some(literal) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = literal;
            } else if let Some(body) = after.strip_prefix("${") {
                let Some(close) = body.find('}') else {
                    problems.push(ReferenceProblem::Unclosed {
                        at: text.len() - after.len() + 1,
                    });
                    break;
                };
                match parse(&body[..close]).and_then(|r| self.value_of(&r)) {
                    Ok(value) => {
                        out.push_str(&value);
                        values.push(value);
                    }
                    Err(p) => problems.push(p),
                }
                rest = &body[close + 1..];
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
        if problems.is_empty() {
            Ok((out, values))
        } else {
            Err(problems)
        }
    }

    fn value_of(&self, reference: &Reference) -> Result<String, ReferenceProblem> {
        match reference {
            Reference::Env(name) => (self.env)(name).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    ReferenceProblem::VariableNotSet { name: name.clone() }
                }
                std::env::VarError::NotUnicode(_) => {
                    ReferenceProblem::VariableNotUnicode { name: name.clone() }
                }
            }),
            Reference::File(path) => {
                let path = self.base_dir.join(path);
                std::fs::read_to_string(&path)
                    .map(|content| content.trim_end_matches(['\n', '\r']).to_owned())
                    .map_err(|e| ReferenceProblem::FileUnreadable {
                        path,
                        reason: e.to_string(),
                    })
            }
        }
    }
}

/// The reference between `${` and `}`.
fn parse(body: &str) -> Result<Reference, ReferenceProblem> {
    if let Some(name) = body.strip_prefix("env:") {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        return if valid {
            Ok(Reference::Env(name.to_owned()))
        } else {
            Err(ReferenceProblem::BadVariableName {
                name: name.to_owned(),
            })
        };
    }
    if let Some(path) = body.strip_prefix("file:") {
        return if path.is_empty() {
            Err(ReferenceProblem::EmptyFilePath)
        } else {
            Ok(Reference::File(PathBuf::from(path)))
        };
    }
    Err(ReferenceProblem::UnknownKind {
        reference: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::env::VarError;

    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "HEC_TOKEN" => Ok("hec-from-env".to_owned()),
            "REDIS_PW" => Ok("pw/1".to_owned()),
            "EMPTY" => Ok(String::new()),
            _ => Err(VarError::NotPresent),
        }
    }

    #[test]
    fn env_and_file_references_resolve_anywhere_in_a_string() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "from-file\n").unwrap();
        let mut root = json!({
            "outputs": {"hec": {"config": {"token": "${env:HEC_TOKEN}", "hosts": ["${file:secret}", "plain"]}}},
            "globals": {"persistence": {"url": "redis://:${env:REDIS_PW}@redis:6379/0"}, "name": "cost $5, $${env:X}"}
        });
        let r = resolve(&mut root, dir.path(), &env);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(root["outputs"]["hec"]["config"]["token"], "hec-from-env");
        assert_eq!(root["outputs"]["hec"]["config"]["hosts"][0], "from-file");
        assert_eq!(
            root["globals"]["persistence"]["url"],
            "redis://:pw/1@redis:6379/0"
        );
        assert_eq!(root["globals"]["name"], "cost $5, ${env:X}");
        let mut resolved: Vec<_> = r
            .resolved
            .iter()
            .map(|(p, v)| (p.as_str(), v.as_str()))
            .collect();
        resolved.sort();
        assert_eq!(
            resolved,
            vec![
                ("globals.persistence.url", "pw/1"),
                ("outputs.hec.config.hosts[0]", "from-file"),
                ("outputs.hec.config.token", "hec-from-env"),
            ]
        );
    }

    #[test]
    fn every_unresolved_reference_names_its_field_and_source() {
        let mut root = json!({
            "inputs": {"a": {"credentials": {"access_secret": "${env:NOT_THERE}"}}},
            "outputs": {
                "r": {"config": {"key": "${file:/nonexistent/dir/key.pem}", "x": "${vault:a/b}", "y": "${env:1BAD}",
                                 "z": "${env:EMPTY}-${env:ALSO_MISSING", "w": "${file:}"}}
            }
        });
        let r = resolve(&mut root, Path::new("/"), &env);
        let mut got: Vec<(ConfigErrorKind, &str, &str)> = r
            .problems
            .iter()
            .map(|e| (e.kind, e.path.as_str(), e.message.as_str()))
            .collect();
        got.sort_by_key(|(_, path, _)| *path);
        assert_eq!(
            got,
            vec![
                (
                    ConfigErrorKind::Missing,
                    "inputs.a.credentials.access_secret",
                    "environment variable NOT_THERE is not set (referenced as ${env:NOT_THERE})"
                ),
                (
                    ConfigErrorKind::FileUnreadable,
                    "outputs.r.config.key",
                    "cannot read \"/nonexistent/dir/key.pem\" (referenced as ${file:...}): No such file or \
                     directory (os error 2)"
                ),
                (
                    ConfigErrorKind::InvalidValue,
                    "outputs.r.config.w",
                    "${file:} names no file"
                ),
                (
                    ConfigErrorKind::InvalidValue,
                    "outputs.r.config.x",
                    "unknown reference \"${vault:a/b}\": use ${env:NAME} or ${file:/path} (write $${ for a literal ${)"
                ),
                (
                    ConfigErrorKind::InvalidValue,
                    "outputs.r.config.y",
                    "\"1BAD\" is not an environment variable name (letters, digits and _, not starting with a digit)"
                ),
                (
                    ConfigErrorKind::InvalidValue,
                    "outputs.r.config.z",
                    "the reference at character 14 has no closing '}' (write $${ for a literal ${)"
                ),
            ]
        );
        // The field keeps its reference text: no second problem about its value.
        assert_eq!(
            root["inputs"]["a"]["credentials"]["access_secret"],
            "${env:NOT_THERE}"
        );
        assert!(r.resolved.is_empty());
    }
}
