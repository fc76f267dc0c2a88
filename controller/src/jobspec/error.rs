//! Jobspec diagnostics: every problem names the file, a line and column, the field path and what
//! was expected, in the form `FILE:LINE:COL: <field path>: <message>`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::tree::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    /// e.g. `job "whoami" > group "web" > task "api" > config`; empty at the top of the file.
    pub field: String,
    pub message: String,
}

impl Diagnostic {
    pub fn error(pos: Pos, field: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            pos,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn warning(pos: Pos, field: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            pos,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Formats the diagnostic for one file: `whoami.nomad:14:9: job "whoami" > …: message`.
    pub fn display<'a>(&'a self, path: &'a Path) -> DisplayDiagnostic<'a> {
        DisplayDiagnostic { diag: self, path }
    }
}

pub struct DisplayDiagnostic<'a> {
    diag: &'a Diagnostic,
    path: &'a Path,
}

impl fmt::Display for DisplayDiagnostic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.diag;
        write!(f, "{}:{}:{}: ", self.path.display(), d.pos.line, d.pos.col)?;
        if d.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !d.field.is_empty() {
            write!(f, "{}: ", d.field)?;
        }
        f.write_str(&d.message)
    }
}

/// A job file that could not become a job. Carries every problem found, not only the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct JobspecError {
    pub path: PathBuf,
    /// What the file is, for the headline: "job file", or "agent config" for the agent's own
    /// HCL, which shares the reader.
    pub kind: &'static str,
    /// Errors first, then warnings, each in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl JobspecError {
    pub fn new(path: &Path, mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| (d.severity, d.pos));
        JobspecError {
            path: path.to_path_buf(),
            kind: "job file",
            diagnostics,
        }
    }

    /// The same problems, reported about an agent config file.
    pub fn in_agent_config(self) -> Self {
        JobspecError {
            kind: "agent config",
            ..self
        }
    }

    pub fn single(path: &Path, pos: Pos, field: &str, message: impl Into<String>) -> Self {
        JobspecError::new(path, vec![Diagnostic::error(pos, field, message)])
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for JobspecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors().count();
        writeln!(
            f,
            "failed to parse {} {}: {n} error{}",
            self.kind,
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", d.display(&self.path))?;
        }
        Ok(())
    }
}
