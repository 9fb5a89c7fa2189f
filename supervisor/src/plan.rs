//! Loading and validating the whole configuration: globals, inputs and outputs, every problem in one pass.

use logferry::config::{root_keys, ConfigError, ConfigFile, Diagnostics, Globals};
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
    let root = file.root_section(&diagnostics);
    let globals_section = root.get_section_or_empty(&root_keys::GLOBALS);
    let globals = Globals::read(&globals_section);
    globals_section.finish();
    let pullers = match root.get_section(&root_keys::INPUTS) {
        Some(inputs) => logferry_input::configure_inputs(&inputs, &input_kinds()),
        None => Vec::new(),
    };
    let outputs = match root.get_section(&root_keys::OUTPUTS) {
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
