//! Check scheduling cost: N tcp checks (2,000 by default) at a 10 s interval against a local
//! listener, on a single-threaded runtime of their own; prints the CPU time that thread used
//! over the measured window as a share of one core. The listener runs on another thread, so its
//! accepts are not counted. `cargo bench -p drover-runtime --bench checks [-- CHECKS SECONDS]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_runtime::checks::{PlannedCheck, Probe, run_check};
use drover_runtime::spec::CheckStatus;
use tokio::sync::mpsc;

fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_THREAD is the calling thread.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let checks: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    let interval = Duration::from_secs(10);

    // The checked server: accepts and drops, on its own thread and runtime.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let sock = tokio::net::TcpSocket::new_v4().expect("socket");
            sock.bind("127.0.5.30:0".parse().unwrap()).expect("bind");
            let listener = sock.listen(4096).expect("listen");
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                if let Ok((s, _)) = listener.accept().await {
                    drop(s);
                }
            }
        });
    });
    let addr = addr_rx.recv().expect("listener address");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (passing, failing, cpu, wall) = rt.block_on(async move {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..checks {
            let c = PlannedCheck {
                service: format!("svc{i}"),
                task: "web".into(),
                name: "alive".into(),
                check_type: "tcp".into(),
                interval,
                timeout: Duration::from_secs(2),
                probe: Probe::Tcp(addr),
                restart: None,
                initial: CheckStatus::Critical,
            };
            tokio::spawn(run_check(
                format!("web/svc{i}/alive"),
                c,
                tx.clone(),
                Arc::new(|_| {}),
            ));
        }
        drop(tx);
        // Let every check run once (they start within their first second), then measure
        // whole intervals of steady state.
        let mut passing = 0usize;
        let mut failing = 0usize;
        let warm = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some((_, r))) = tokio::time::timeout_at(warm, rx.recv()).await {
            if r.status == CheckStatus::Passing {
                passing += 1;
            } else {
                failing += 1;
            }
        }
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
        while let Ok(Some((_, r))) = tokio::time::timeout_at(end, rx.recv()).await {
            if r.status != CheckStatus::Passing {
                failing += 1;
            }
        }
        (passing, failing, thread_cpu() - cpu0, t0.elapsed())
    });
    let runs = checks as f64 * wall.as_secs_f64() / interval.as_secs_f64();
    println!(
        "checks: {checks} tcp checks every {interval:?}; {passing} passed their first run, {failing} status changes to failing"
    );
    println!(
        "checks: {:.3} s CPU over {:.1} s ({:.0} probes) = {:.2}% of one core, {:.1} µs per probe",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        runs,
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        1e6 * cpu.as_secs_f64() / runs
    );
}
