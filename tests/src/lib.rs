//! Helpers for drover's end-to-end tests: find the `drover` binary built for this test run and
//! run it like a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `drover` binary of this build (`DROVER_BIN` overrides), built first if it is missing.
pub fn drover_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DROVER_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps; the binary one level up.
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let bin = profile_dir.join("drover");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "drover-controller", "--bin", "drover"])
            .current_dir(repo())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the drover binary failed");
    }
    bin
}

/// Runs `drover ARGS…` in `dir` and returns its output.
pub fn drover(dir: &Path, args: &[&str]) -> Output {
    Command::new(drover_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the drover binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
