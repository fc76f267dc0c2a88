//! The malformed-job corpus: every file in `tests/malformed/` is a job file with one kind of
//! mistake, paired with `NAME.expect` (one substring per line that the error must contain).
//! A few cases are too big or too deep to commit and are generated here.
//!
//! For every case the parser must return an error, not panic; every error must name the file, a
//! line and column, and (unless it is about the file as a whole) the field it is about.
//!
//! `DROVER_PRINT_MALFORMED=1 cargo test -p drover-controller --test malformed -- --nocapture`
//! prints every message, to review them; `DROVER_MALFORMED_ONLY=part-of-a-name` runs only the
//! matching cases (`!part` all but those).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use drover::jobspec::{self, JobspecError, ParseOptions};

/// Messages about the file as a whole, which name no field: the file is not text, not
/// well-formed, too big, or not a mapping at all.
const FILE_LEVEL: &[&str] = &[
    "invalid HCL syntax",
    "invalid YAML",
    "the file is",
    "the file contains",
    "expected a mapping with a `job` key",
];

struct Case {
    name: String,
    path: PathBuf,
    bytes: Vec<u8>,
    expect: Vec<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

fn committed_cases() -> Vec<Case> {
    let dir = corpus_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/malformed exists")
        .map(|e| {
            e.expect("readable dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| !n.ends_with(".expect"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let stem = path
                .file_stem()
                .expect("file stem")
                .to_string_lossy()
                .into_owned();
            let expect_path = dir.join(format!("{stem}.expect"));
            let expect = std::fs::read_to_string(&expect_path)
                .unwrap_or_else(|_| panic!("{name} has no {stem}.expect beside it"));
            Case {
                bytes: std::fs::read(&path).expect("readable case"),
                expect: expect
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect(),
                name,
                path,
            }
        })
        .collect()
}

/// Cases too large or too repetitive to commit.
fn generated_cases() -> Vec<Case> {
    let dir = corpus_dir();
    let case = |name: &str, bytes: Vec<u8>, expect: &[&str]| Case {
        name: name.to_string(),
        path: dir.join(name),
        bytes,
        expect: expect.iter().map(|s| s.to_string()).collect(),
    };
    let whoami = "job \"web\" {\n  group \"web\" {\n    task \"api\" {\n      driver = \"docker\"\n      config { image = \"traefik/whoami\" }\n    }\n  }\n}\n";
    let mut huge = whoami.as_bytes().to_vec();
    huge.extend(std::iter::repeat_n(b'#', 50 * 1024 * 1024));
    let deep = 10_000;
    vec![
        case(
            "generated-50mb.nomad",
            huge,
            &["larger than the", "limit for a job file"],
        ),
        case(
            "generated-deep-braces.nomad",
            format!(
                "job \"web\" {{\n{}{}}}\n",
                "a {\n".repeat(deep),
                "}\n".repeat(deep)
            )
            .into_bytes(),
            &["generated-deep-braces.nomad:", "nesting depth"],
        ),
        case(
            "generated-deep-brackets.nomad",
            format!(
                "job \"web\" {{\n  meta = {}{}\n}}\n",
                "[".repeat(deep),
                "]".repeat(deep)
            )
            .into_bytes(),
            &["generated-deep-brackets.nomad:2:", "nesting depth"],
        ),
        case(
            "generated-deep-parens.nomad",
            format!(
                "job \"web\" {{\n  priority = {}1{}\n}}\n",
                "(".repeat(deep),
                ")".repeat(deep)
            )
            .into_bytes(),
            &["nesting depth"],
        ),
        case(
            "generated-deep-objects.nomad",
            format!(
                "job \"web\" {{\n  meta = {}{}\n}}\n",
                "{a = ".repeat(deep),
                "}".repeat(deep)
            )
            .into_bytes(),
            &["nested inside more than 10 others"],
        ),
        case(
            "generated-deep-interpolation.nomad",
            format!(
                "job \"web\" {{\n  name = {}{}\n}}\n",
                "\"${".repeat(deep),
                "}\"".repeat(deep)
            )
            .into_bytes(),
            &["nesting depth"],
        ),
        case(
            "generated-long-operator-chain.nomad",
            format!(
                "job \"web\" {{\n  priority = {}1\n}}\n",
                "1 + ".repeat(deep * 10)
            )
            .into_bytes(),
            &["generated-long-operator-chain.nomad:2:"],
        ),
        case(
            "generated-long-unary-chain.nomad",
            format!(
                "job \"web\" {{\n  all_at_once = {}true\n}}\n",
                "!".repeat(deep)
            )
            .into_bytes(),
            &["generated-long-unary-chain.nomad:2:"],
        ),
        case(
            "generated-long-conditional-chain.nomad",
            format!(
                "job \"web\" {{\n  priority = {}1\n}}\n",
                "true ? 1 : ".repeat(deep)
            )
            .into_bytes(),
            &["generated-long-conditional-chain.nomad:2:"],
        ),
        case(
            "generated-4mb-of-attributes.nomad",
            {
                let mut s = String::from("job \"web\" {\n  meta {\n");
                let mut i = 0;
                while s.len() < 4 * 1024 * 1024 - 64 {
                    s.push_str(&format!("    k{i} = \"v\"\n"));
                    i += 1;
                }
                s.push_str("  }\n}\n");
                s.into_bytes()
            },
            &[
                "generated-4mb-of-attributes.nomad:2:8:",
                "holds more than 10000 entries",
            ],
        ),
        case(
            "generated-4mb-one-line.nomad",
            {
                let mut s = String::from("job \"web\" { meta = { ");
                let mut i = 0;
                while s.len() < 4 * 1024 * 1024 - 64 {
                    s.push_str(&format!("k{i} = \"v\", "));
                    i += 1;
                }
                s.push_str("} }\n");
                s.into_bytes()
            },
            &[
                "generated-4mb-one-line.nomad:1:20:",
                "holds more than 10000 entries",
            ],
        ),
        case(
            "generated-wide-object.nomad",
            format!(
                "job \"web\" {{ meta = {{ {} }} }}\n",
                (0..9_000)
                    .map(|i| format!("k{i} = \"v\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .into_bytes(),
            &[
                "generated-wide-object.nomad:1:1:",
                "a job needs at least one group block",
            ],
        ),
        case(
            "generated-4mb-yaml-mapping.yaml",
            {
                let mut s = String::from("job:\n  web:\n    meta:\n");
                let mut i = 0;
                while s.len() < 4 * 1024 * 1024 - 64 {
                    s.push_str(&format!("      k{i}: v\n"));
                    i += 1;
                }
                s.into_bytes()
            },
            &[
                "generated-4mb-yaml-mapping.yaml:",
                "invalid YAML: the document is larger than a job file can be",
            ],
        ),
        case(
            "generated-backtracking-objects.nomad",
            format!(
                "job \"web\" {{\n  meta = {}1\n}}\n",
                "{g = a + b + ".repeat(40)
            )
            .into_bytes(),
            &[
                "generated-backtracking-objects.nomad:2:",
                "nested inside more than 10 others",
            ],
        ),
        case(
            "generated-deep-yaml.yaml",
            format!("job: {}{}\n", "[".repeat(deep), "]".repeat(deep)).into_bytes(),
            &["generated-deep-yaml.yaml:1:", "invalid YAML"],
        ),
        case(
            "generated-deep-yaml-block.yaml",
            (0..1000)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect::<String>()
                .into_bytes(),
            &["generated-deep-yaml-block.yaml:", "invalid YAML"],
        ),
    ]
}

/// Parses on a thread named after the case, so even a stack overflow (which no
/// `catch_unwind` can stop) names the file that caused it.
fn parse_case(case: &Case) -> Result<Result<jobspec::Parsed, JobspecError>, String> {
    let path = case.path.clone();
    let bytes = case.bytes.clone();
    let handle = std::thread::Builder::new()
        .name(case.name.clone())
        .spawn(move || {
            catch_unwind(AssertUnwindSafe(|| {
                jobspec::parse(&path, &bytes, &ParseOptions::default())
            }))
        })
        .expect("spawn a parser thread");
    match handle.join() {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(panic)) | Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a non-string panic".into());
            Err(msg)
        }
    }
}

fn check(case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let err = match parse_case(case) {
        Err(panic) => return vec![format!("the parser panicked: {panic}")],
        Ok(Ok(_)) => return vec!["parsed without error".into()],
        Ok(Err(e)) => e,
    };
    let text = err.to_string();
    if std::env::var_os("DROVER_PRINT_MALFORMED").is_some() {
        println!("--- {}\n{text}\n", case.name);
    }
    let errors: Vec<_> = err.errors().collect();
    if errors.is_empty() {
        problems.push("the error holds no error diagnostic".into());
    }
    for d in &errors {
        let shown = d.display(&err.path).to_string();
        if d.pos.line < 1 || d.pos.col < 1 {
            problems.push(format!("line or column below 1: {shown}"));
        }
        if !shown.contains(&case.name) {
            problems.push(format!("does not name the file: {shown}"));
        }
        let at = format!(":{}:{}: ", d.pos.line, d.pos.col);
        if !shown.contains(&at) || !text.contains(&shown) {
            problems.push(format!("not shown as FILE:LINE:COL: {shown}"));
        }
        if d.field.is_empty() && !FILE_LEVEL.iter().any(|p| d.message.starts_with(p)) {
            problems.push(format!("names no field: {shown}"));
        }
        if d.message.trim().is_empty() {
            problems.push(format!("empty message: {shown}"));
        }
    }
    for want in &case.expect {
        if !text.contains(want.as_str()) {
            problems.push(format!("expected {want:?} in the error"));
        }
    }
    if !problems.is_empty() {
        problems.push(format!("the error was:\n{text}"));
    }
    problems
}

#[test]
fn every_malformed_job_is_refused_with_a_located_message() {
    let committed = committed_cases();
    assert!(
        committed.len() >= 45,
        "the corpus holds {} committed cases; keep at least 45",
        committed.len()
    );
    let mut failures = Vec::new();
    let only = std::env::var("DROVER_MALFORMED_ONLY").ok();
    let cases: Vec<Case> = committed
        .into_iter()
        .chain(generated_cases())
        .filter(|c| match only.as_deref() {
            None => true,
            Some(o) => match o.strip_prefix('!') {
                Some(not) => !c.name.contains(not),
                None => c.name.contains(o),
            },
        })
        .collect();
    for case in &cases {
        let problems = check(case);
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}", case.name, problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} malformed cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_expect_file_has_a_case() {
    let dir = corpus_dir();
    for entry in std::fs::read_dir(&dir).expect("tests/malformed exists") {
        let name = entry
            .expect("readable dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(stem) = name.strip_suffix(".expect") {
            let has_case = std::fs::read_dir(&dir)
                .expect("tests/malformed exists")
                .filter_map(Result::ok)
                .any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    !n.ends_with(".expect") && Path::new(&n).file_stem().is_some_and(|s| s == stem)
                });
            assert!(has_case, "{name} has no case file");
        }
    }
}

/// The other side of the corpus: what the parser refuses above it must still accept here.
#[test]
fn seed_jobs_still_parse() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/seed");
    let files = [
        seed.join("whoami.nomad"),
        seed.join("consul.nomad"),
        seed.join("todo-list.nomad"),
        seed.join("todo-list-dev.nomad"),
        seed.join("todo-list-v2/todo-db.nomad"),
        seed.join("todo-list-v2/todo-web.nomad"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures/big.nomad"),
    ];
    for path in files {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = jobspec::parse(&path, &bytes, &ParseOptions::default()) {
            panic!("{e}");
        }
    }
}
