//! The `drover` binary's offline job commands, run as a user would run them.

use drover_tests::{drover, repo, stderr, stdout};

#[test]
fn validate_accepts_the_seed_jobs_and_the_manifests_directory() {
    let seed = repo().join("tests/fixtures/seed");
    for f in [
        "whoami.nomad",
        "todo-list-dev.nomad",
        "todo-list.nomad",
        "consul.nomad",
        "todo-list-v2/todo-db.nomad",
        "todo-list-v2/todo-web.nomad",
    ] {
        let out = drover(&seed, &["job", "validate", f]);
        assert!(out.status.success(), "{f}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("Job validation successful"),
            "{f}: {}",
            stdout(&out)
        );
    }
    let out = drover(&repo(), &["job", "validate", "manifests"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn validate_reports_every_error_with_file_line_and_field_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("whoami.nomad");
    std::fs::write(
        &file,
        "job \"whoami\" {\n  group \"web\" {\n    cout = 2\n    task \"api\" {\n      driver = \"docker\"\n      config {\n        ports = [\"http\"]\n      }\n    }\n  }\n}\n",
    )
    .expect("write");
    let out = drover(dir.path(), &["job", "validate", "whoami.nomad"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "whoami.nomad:3:5: job \"whoami\" > group \"web\": unknown attribute \"cout\""
        ),
        "{err}"
    );
    assert!(err.contains("did you mean \"count\""), "{err}");
    assert!(err.contains("whoami.nomad:6:7: job \"whoami\" > group \"web\" > task \"api\" > config: image is required for the docker driver"), "{err}");
    assert!(
        err.contains("\"http\" is not a port declared in the group network"),
        "{err}"
    );
}

#[test]
fn nomad_style_single_dash_flags_and_vars_work() {
    let out = drover(
        &repo(),
        &[
            "job",
            "inspect",
            "-yaml",
            "-var",
            "port=9100",
            "-var=greeting=hey",
            "manifests/hello.nomad",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = stdout(&out);
    assert!(yaml.contains("static: 9100"), "{yaml}");
    assert!(yaml.contains("GREETING: hey"), "{yaml}");
    let out = drover(
        &repo(),
        &[
            "job",
            "validate",
            "--var",
            "nope=1",
            "manifests/hello.nomad",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("undeclared variable \"nope\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn init_writes_a_job_that_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = drover(dir.path(), &["job", "init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = drover(dir.path(), &["job", "validate", "example.nomad.hcl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again = drover(dir.path(), &["job", "init"]);
    assert_eq!(again.status.code(), Some(1), "init refuses to overwrite");
}

#[test]
fn version_and_help() {
    let out = drover(&repo(), &["version"]);
    assert!(stdout(&out).starts_with("drover v"), "{}", stdout(&out));
    for args in [
        &["-h"][..],
        &["job", "-h"],
        &["job", "run", "-h"],
        &["job", "validate", "-h"],
        &["job", "inspect", "-h"],
        &["job", "init", "-h"],
    ] {
        let out = drover(&repo(), args);
        assert!(
            out.status.success() && stdout(&out).contains("Usage:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = drover(&repo(), &["job", "frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
}
