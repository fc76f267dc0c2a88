//! Arbitrary bytes as a `.yaml` job file: the parser must return Ok or an error naming a
//! line, never panic, overflow its stack or hang.
#![no_main]

use std::path::Path;

use drover::jobspec::{self, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = jobspec::parse(Path::new("fuzz.yaml"), data, &ParseOptions::default()) {
        assert!(e.errors().next().is_some(), "an error without an error diagnostic");
        assert!(e.diagnostics.iter().all(|d| d.pos.line >= 1 && d.pos.col >= 1), "{e}");
    }
});
