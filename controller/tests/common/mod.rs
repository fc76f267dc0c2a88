//! What the jobspec integration tests share: where the repository is, and its example jobs.

use std::path::{Path, PathBuf};

use drover::jobspec;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn job_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            // The tutorial's configs/ holds an app's config file, not jobs.
            if !p.ends_with("configs") {
                job_files(&p, out);
            }
        } else if jobspec::Format::is_job_file(&p)
            && !p.ends_with("client.hcl")
            && !p.ends_with("server.hcl")
        {
            out.push(p);
        }
    }
}

/// Every job file of the seed (`tests/fixtures/seed/`), `manifests/` and `examples/`.
pub fn all_examples() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["tests/fixtures/seed", "manifests", "examples"] {
        job_files(&repo().join(dir), &mut files);
    }
    assert!(
        files.len() >= 10,
        "expected the seed jobs and the examples, found {files:?}"
    );
    files
}
