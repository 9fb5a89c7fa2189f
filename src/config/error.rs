//! The validation vocabulary: every configuration problem has an error type, a numeric id and a field path.

use std::fmt;

/// Which part of the file a problem is in; the error type name operators see (`ServiceConfigurationError`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigScope {
    /// The file itself (unreadable, bad YAML/JSON).
    File,
    Globals,
    Input,
    Service,
    Output,
}

impl ConfigScope {
    /// Derives the scope from a field path such as `inputs.aws.services.x.tag`.
    pub fn of_path(path: &str) -> ConfigScope {
        let mut parts = path.split('.');
        match parts.next() {
            Some("globals") => ConfigScope::Globals,
            Some("inputs") => {
                if parts.nth(1) == Some("services") && parts.next().is_some() {
                    ConfigScope::Service
                } else {
                    ConfigScope::Input
                }
            }
            Some("outputs") => ConfigScope::Output,
            _ => ConfigScope::File,
        }
    }

    pub fn error_type(self) -> &'static str {
        match self {
            ConfigScope::File => "ConfigFileError",
            ConfigScope::Globals => "GlobalsConfigurationError",
            ConfigScope::Input => "InputConfigurationError",
            ConfigScope::Service => "ServiceConfigurationError",
            ConfigScope::Output => "OutputConfigurationError",
        }
    }
}

/// What is wrong; its discriminant is the error id shown to operators (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// 1: a mandatory property is missing or empty.
    Missing = 1,
    /// 2: a property must be a dictionary.
    NotADictionary = 2,
    /// 3: a property has the wrong type (e.g. a string where a number is expected).
    WrongType = 3,
    /// 4: a number is outside its allowed range.
    OutOfRange = 4,
    /// 5: a value has the right type but is not valid (format, enum value, regex, placeholder).
    InvalidValue = 5,
    /// 6: a key that no component knows.
    UnknownKey = 6,
    /// 7: a referenced file does not exist or cannot be read.
    FileUnreadable = 7,
    /// 8: an unknown input, service or output type.
    UnknownType = 8,
    /// 9: settings that contradict each other.
    Conflict = 9,
    /// 10: the file cannot be read.
    FileNotReadable = 10,
    /// 11: the file is not valid YAML or JSON.
    Syntax = 11,
}

impl ConfigErrorKind {
    pub fn id(self) -> u32 {
        self as u32
    }
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub kind: ConfigErrorKind,
    /// Dotted field path, e.g. `outputs.relay.config.port`; empty for whole-file problems.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(kind: ConfigErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            kind,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn scope(&self) -> ConfigScope {
        if matches!(
            self.kind,
            ConfigErrorKind::Syntax | ConfigErrorKind::FileNotReadable
        ) {
            ConfigScope::File
        } else {
            ConfigScope::of_path(&self.path)
        }
    }

    /// True for problems that `run` only warns about (unknown keys); `validate` reports them all.
    pub fn is_warning_at_run(&self) -> bool {
        self.kind == ConfigErrorKind::UnknownKey
    }
}

impl fmt::Display for ConfigError {
    /// `ServiceConfigurationError(4) "inputs.aws.services.x.region": value 70000 is out of range 1..=65535`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}) \"{}\": {}",
            self.scope().error_type(),
            self.kind.id(),
            self.path,
            self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one pass over the file.
#[derive(Debug, Clone, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_follows_the_path() {
        assert_eq!(
            ConfigScope::of_path("globals.queue_max_size_in_mb"),
            ConfigScope::Globals
        );
        assert_eq!(ConfigScope::of_path("inputs.aws.id"), ConfigScope::Input);
        assert_eq!(
            ConfigScope::of_path("inputs.aws.services.x.tag"),
            ConfigScope::Service
        );
        assert_eq!(
            ConfigScope::of_path("outputs.relay.config.port"),
            ConfigScope::Output
        );
    }

    #[test]
    fn display_names_type_id_and_path() {
        let e = ConfigError::new(
            ConfigErrorKind::OutOfRange,
            "outputs.r.config.port",
            "70000 is out of range",
        );
        assert_eq!(
            e.to_string(),
            "OutputConfigurationError(4) \"outputs.r.config.port\": 70000 is out of range"
        );
    }
}
