//! DNS throughput: SRV lookups of one service with 1,000 healthy instances, answered by the
//! agent's DNS handler (hickory-server) on a single-threaded runtime, driven over loopback UDP by
//! client threads that keep a window of queries in flight. Prints queries per second and the
//! server thread's CPU use, so the figure can be read per core on a shared machine.
//! `cargo bench -p drover-controller --bench dns [-- SECONDS CLIENTS]`.

use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover::dns::{DnsConfig, DnsServer, handler};
use drover::services::Catalog;
use drover::structs::ServiceRegistration;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

const INSTANCES: usize = 1000;
const WINDOW: usize = 32;

fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_THREAD is the calling thread.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn catalog() -> Catalog {
    let regs = (0..INSTANCES)
        .map(|i| ServiceRegistration {
            id: format!("_nomad-task-{i:08x}-web-bench-http"),
            service_name: "bench".into(),
            namespace: "default".into(),
            node_id: format!("node-{}", i % 10),
            datacenter: "dc1".into(),
            job_id: "bench".into(),
            alloc_id: format!("{i:08x}-0000-4000-8000-000000000000"),
            tags: vec!["v1".into()],
            address: format!("10.0.{}.{}", i / 250, i % 250 + 1),
            port: 20000 + i as u16,
            create_index: 1,
            modify_index: 1,
            node_name: format!("node-{}", i % 10),
            checks: vec![],
        })
        .collect();
    Catalog::new(1, regs)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let clients: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2);

    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (cpu_tx, cpu_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let h = handler(&DnsConfig::default(), "dc1", Arc::new(catalog())).expect("handler");
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let dns = DnsServer::start(&["127.0.5.31:0".parse().unwrap()], h, async move {
                let _ = done_rx.await;
            })
            .await
            .expect("dns server");
            addr_tx.send(dns.addrs[0]).unwrap();
            let cpu0 = thread_cpu();
            let _ = stop_rx.await;
            cpu_tx.send(thread_cpu() - cpu0).unwrap();
            let _ = done_tx.send(());
        });
    });
    let addr: SocketAddr = addr_rx.recv().expect("server address");

    let mut q = Message::new(1, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(
        Name::from_str("bench.service.consul.").unwrap(),
        RecordType::SRV,
    ));
    let query = q.to_vec().unwrap();

    // Check one answer before measuring: the bench must measure real SRV answers.
    {
        let s = UdpSocket::bind("127.0.5.31:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send_to(&query, addr).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = s.recv_from(&mut buf).expect("an answer");
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(
            m.answers.len(),
            3,
            "a UDP answer carries udp_answer_limit SRV records"
        );
    }

    let answered = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let answered = answered.clone();
            let running = running.clone();
            let query = query.clone();
            std::thread::spawn(move || {
                let s = UdpSocket::bind("127.0.5.31:0").unwrap();
                s.connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut buf = [0u8; 4096];
                for _ in 0..WINDOW {
                    let _ = s.send(&query);
                }
                while running.load(Ordering::Relaxed) {
                    match s.recv(&mut buf) {
                        Ok(n) if n > 12 => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            let _ = s.send(&query);
                        }
                        Ok(_) => {}
                        // A lost datagram: refill the window.
                        Err(_) => {
                            for _ in 0..WINDOW {
                                let _ = s.send(&query);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    running.store(false, Ordering::Relaxed);
    let wall = t0.elapsed();
    let _ = stop_tx.send(());
    let server_cpu = cpu_rx.recv().expect("server cpu");
    for t in threads {
        let _ = t.join();
    }
    let _ = server.join();
    let n = answered.load(Ordering::Relaxed) as f64;
    let qps = n / wall.as_secs_f64();
    let share = server_cpu.as_secs_f64() / wall.as_secs_f64();
    println!(
        "dns: SRV bench.service.consul over {INSTANCES} instances, {clients} clients x {WINDOW} in flight"
    );
    println!(
        "dns: {qps:.0} queries/s; the server thread used {:.0}% of one core = {:.0} queries per CPU-second",
        100.0 * share,
        n / server_cpu.as_secs_f64().max(1e-9)
    );
}
