//! Faults a test switches on in a debug build, so the daemon's defences are seen acting on a
//! real fault: a worker stuck in an evaluation must stop the systemd watchdog pings and get the
//! agent restarted (tests/tests/systemd_init.rs runs that under a real systemd).
//!
//! `DROVER_FAILPOINTS` names the points to trigger, comma-separated. A release build compiles
//! every point to nothing, so no environment variable can stall a production daemon.

/// Blocks the calling thread for good when the point `name` is switched on.
pub fn stall(name: &str) {
    #[cfg(debug_assertions)]
    if enabled(name) {
        tracing::warn!(
            failpoint = name,
            "failpoint switched on: this thread stops here"
        );
        loop {
            std::thread::park();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(debug_assertions)]
fn enabled(name: &str) -> bool {
    static POINTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    POINTS
        .get_or_init(|| parse(&std::env::var("DROVER_FAILPOINTS").unwrap_or_default()))
        .iter()
        .any(|p| p == name)
}

#[cfg(debug_assertions)]
fn parse(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(all(test, debug_assertions))]
mod tests {
    #[test]
    fn points_are_a_comma_separated_list() {
        assert_eq!(
            super::parse(" worker-stall, ,other"),
            ["worker-stall", "other"]
        );
        assert!(super::parse("").is_empty());
    }
}
