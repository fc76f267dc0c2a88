//! The jobspec: a job file (Nomad HCL2, YAML in the HCL-JSON shape, or Nomad's API JSON) becomes
//! one typed [`Job`] with Nomad's defaults applied, or a [`JobspecError`] listing every problem
//! as `FILE:LINE:COL: <field path>: <message>`.
//!
//! HCL and YAML are read into one position-keeping [`tree`], then [`decode`]d by the same code,
//! so both formats get the same validation and the same messages. Nomad's API JSON is renamed
//! into that same tree by [`json`], and so decoded by the same code too.

mod decode;
mod error;
mod eval;
pub mod fields;
mod funcs;
pub mod hcl;
mod json;
pub mod schema;
pub mod tree;
mod yaml;

use std::path::Path;

pub use error::{Diagnostic, JobspecError, Severity};
pub use hcl::VarInputs;
pub use json::{from_api_json, to_api_job, to_api_json};
pub use tree::Pos;
pub use yaml::to_yaml;

use crate::structs::Job;

/// Job files larger than this are refused before parsing: no real jobspec comes close.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hcl,
    Yaml,
    Json,
}

impl Format {
    /// By extension: `.nomad`/`.hcl` HCL, `.yaml`/`.yml` YAML, `.json` Nomad's API JSON.
    /// Anything else is read as HCL, as `nomad job run` does.
    pub fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            _ => Format::Hcl,
        }
    }

    /// Whether a file in a watched directory is a job file at all.
    pub fn is_job_file(path: &Path) -> bool {
        matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("nomad" | "hcl" | "yaml" | "yml" | "json")
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    pub vars: VarInputs,
}

/// A job read from a file, with the warnings it raised (ignored blocks, legacy forms).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub job: Job,
    pub warnings: Vec<Diagnostic>,
}

/// Reads and parses a job file from disk.
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<Parsed, JobspecError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        JobspecError::single(
            path,
            Pos::new(1, 1),
            "",
            format!("failed to read the job file: {e}"),
        )
    })?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(too_large(path, meta.len() as usize));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        JobspecError::single(
            path,
            Pos::new(1, 1),
            "",
            format!("failed to read the job file: {e}"),
        )
    })?;
    parse(path, &bytes, opts)
}

fn too_large(path: &Path, len: usize) -> JobspecError {
    JobspecError::single(
        path,
        Pos::new(1, 1),
        "",
        format!(
            "the file is {len} bytes, larger than the {MAX_FILE_BYTES}-byte limit for a job file"
        ),
    )
}

/// Parses a job file's bytes; the format comes from `path`'s extension.
pub fn parse(path: &Path, bytes: &[u8], opts: &ParseOptions) -> Result<Parsed, JobspecError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_large(path, bytes.len()));
    }
    let src = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let pos = Pos::of_offset(valid, valid.len());
            return Err(JobspecError::single(
                path,
                pos,
                "",
                format!(
                    "the file is not UTF-8 text: invalid byte 0x{:02x}",
                    bytes[e.valid_up_to()]
                ),
            ));
        }
    };
    if src.trim().is_empty() {
        return Err(JobspecError::single(
            path,
            Pos::new(1, 1),
            "",
            "the file is empty: a job file holds one `job \"name\" { … }` block",
        ));
    }
    if let Some(off) = src.find('\0') {
        return Err(JobspecError::single(
            path,
            Pos::of_offset(src, off),
            "",
            "the file contains a NUL byte: it is binary, not a job file",
        ));
    }
    let mut diags = Vec::new();
    let body = match Format::of_path(path) {
        Format::Hcl => {
            let base_dir = path.parent().map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            });
            let file = hcl::read(src, base_dir, &opts.vars);
            diags.extend(file.diagnostics);
            Some(file.body)
        }
        Format::Yaml => match yaml::read(src) {
            Ok(body) => Some(body),
            Err(d) => {
                diags.push(d);
                None
            }
        },
        Format::Json => return json::from_api_json(path, src),
    };
    // A syntax error leaves nothing to decode; the decoder would only add noise.
    let job = match body {
        Some(body)
            if !diags
                .iter()
                .any(|d| d.is_error() && d.message.starts_with("invalid HCL syntax")) =>
        {
            decode::decode_file(&body, &mut diags)
        }
        _ => None,
    };
    match job {
        Some(job) if !diags.iter().any(Diagnostic::is_error) => {
            diags.sort_by_key(|d| d.pos);
            Ok(Parsed {
                job,
                warnings: diags,
            })
        }
        _ => {
            // A mistake inside a dynamic block's content is found once per generated block.
            let mut seen = std::collections::HashSet::new();
            diags.retain(|d| seen.insert((d.pos, d.field.clone(), d.message.clone())));
            Err(JobspecError::new(path, diags))
        }
    }
}
