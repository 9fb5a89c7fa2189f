//! Loading and validating the whole configuration: globals, inputs and outputs, every problem in one pass.

use logferry::config::{ConfigError, ConfigFile, Diagnostics, Globals};
use logferry_input::{InputKind, PullerSpec};
use logferry_output::{OutputKind, OutputSpec};
use std::path::Path;

/// What a valid configuration becomes: everything the processes need, built before any fork.
pub struct Plan {
    pub globals: Globals,
    pub pullers: Vec<PullerSpec>,
    pub outputs: Vec<OutputSpec>,
}

/// The result of validation: the plan (when usable) and every problem found.
pub struct Validation {
    pub plan: Option<Plan>,
    pub problems: Vec<ConfigError>,
}

impl Validation {
    /// Problems that stop `run` (everything except unknown keys, which `run` logs as warnings).
    pub fn blocking(&self) -> impl Iterator<Item = &ConfigError> {
        self.problems.iter().filter(|e| !e.is_warning_at_run())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &ConfigError> {
        self.problems.iter().filter(|e| e.is_warning_at_run())
    }
}

/// Every input kind this binary knows.
pub fn input_kinds() -> Vec<&'static dyn InputKind> {
    let mut kinds: Vec<&'static dyn InputKind> = vec![&logferry_input::demo::DemoInput];
    kinds.extend(logferry_input_aws::input_kinds());
    kinds.extend(logferry_input_alibaba::input_kinds());
    kinds
}

/// Every output kind this binary knows.
pub fn output_kinds() -> Vec<&'static dyn OutputKind> {
    logferry_output::senders::output_kinds()
}

/// Reads and validates the file at `path`.
pub fn validate(path: &Path) -> Validation {
    let file = match ConfigFile::load(path) {
        Ok(f) => f,
        Err(e) => {
            return Validation {
                plan: None,
                problems: vec![e],
            }
        }
    };
    let diagnostics = Diagnostics::default();
    let empty = serde_json::Map::new();
    let root = file.root_section(&diagnostics);
    let globals = match root.section("globals", false) {
        Some(g) => {
            let globals = Globals::read(&g);
            g.finish();
            globals
        }
        None => Globals::read(&root.child("globals", &empty)),
    };
    let pullers = match root.section("inputs", true) {
        Some(inputs) => logferry_input::configure_inputs(&inputs, &input_kinds()),
        None => Vec::new(),
    };
    let outputs = match root.section("outputs", true) {
        Some(outputs) => logferry_output::configure_outputs(&outputs, &output_kinds(), &globals),
        None => Vec::new(),
    };
    root.finish();
    let problems = file.with_reference_problems(diagnostics.take());
    Validation {
        plan: Some(Plan {
            globals,
            pullers,
            outputs,
        }),
        problems,
    }
}
