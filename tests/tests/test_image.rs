//! The local test image that later Docker tests run: built by scripts/test-image from Debian's
//! busybox-static, since no registry can be reached.

use std::process::Command;

#[test]
fn the_local_test_image_runs_a_shell_and_an_http_server() {
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--label",
            "drover.test=test_image",
            "drover-test/busybox:latest",
            "sh",
            "-c",
            "echo ok && which httpd nc sleep",
        ])
        .output()
        .expect("the docker CLI runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("ok\n") && text.contains("/bin/httpd"),
        "{text}"
    );
}
