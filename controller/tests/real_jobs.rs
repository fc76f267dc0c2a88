//! Real public Nomad job files (see `real_jobs/README.md` for where each comes from) must never be
//! refused for anything but a feature drover does not run: each file either parses (warnings are
//! fine) or fails only with errors that say "unsupported".

use std::path::{Path, PathBuf};

use drover::jobspec::{self, ParseOptions};

fn job_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real_jobs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/real_jobs exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| jobspec::Format::is_job_file(p))
        .collect();
    files.sort();
    files
}

#[test]
fn real_jobs_parse_or_fail_only_as_unsupported() {
    let files = job_files();
    assert!(
        files.len() >= 10,
        "expected at least 10 real job files, found {}",
        files.len()
    );
    let mut bad = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        match jobspec::parse_file(path, &ParseOptions::default()) {
            Ok(parsed) => {
                println!("{name}: parses, {} warning(s)", parsed.warnings.len());
                for w in &parsed.warnings {
                    println!("    {}", w.display(path));
                }
            }
            Err(e) => {
                let others: Vec<_> = e
                    .errors()
                    .filter(|d| !d.message.contains("unsupported"))
                    .collect();
                println!(
                    "{name}: refused, {} error(s), {} not \"unsupported\"",
                    e.errors().count(),
                    others.len()
                );
                for d in e.errors() {
                    println!("    {}", d.display(path));
                }
                if !others.is_empty() {
                    bad.push(format!(
                        "{name}:\n{}",
                        others
                            .iter()
                            .map(|d| format!("    {}", d.display(path)))
                            .collect::<Vec<_>>()
                            .join("\n")
                    ));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "real jobs refused for something other than an unsupported feature:\n{}",
        bad.join("\n")
    );
}
