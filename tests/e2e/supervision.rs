//! The master and its workers: killed workers are replaced, protocol
//! garbage is dropped, and a stop lets requests in flight finish.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Server, corpus};

const GOOD: &str = "/img/w_64/photos/flickr-saw-2725x2225.jpg";

/// The `n`-th of a set of slow requests, each a derivative of its own: a
/// 24 MP photo to a large AVIF takes seconds to render.
fn slow(n: usize) -> String {
    format!("/img/w_{},f_avif/photos/milkyway-24mp-4000x6000.jpg", 1501 + n)
}

#[test]
fn a_worker_killed_with_sigkill_is_replaced() {
    let server = Server::start(&corpus());
    let before = server.worker_pids();
    let victim = before[0];
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
    server.wait_for(
        |s| {
            let now = s.worker_pids();
            now.len() == 2 && !now.contains(&victim)
        },
        "a replacement worker",
    );
    assert!(server.log().contains(&format!("worker killed pid={victim}")));
    for n in 0..4 {
        let reply = server.get(&format!("{GOOD}?n={n}"));
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
}

/// Sends `bytes` straight to the worker socket and reads until it closes.
fn send_raw(server: &Server, bytes: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(&server.socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

#[test]
fn a_malformed_fastcgi_record_is_dropped_and_the_next_request_succeeds() {
    let server = Server::start_with(&corpus(), 1);
    // An HTTP request where a FastCGI record belongs: version byte 'G'.
    send_raw(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // A record header cut short, then the peer hangs up.
    send_raw(&server, &[1, 1, 0]);
    // A BEGIN_REQUEST whose params block claims 60,000 bytes and stops.
    let mut truncated = vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    truncated.extend_from_slice(&[1, 4, 0, 1, 0xea, 0x60, 0, 0, 0x7f]);
    send_raw(&server, &truncated);

    server.wait_for(
        |s| s.log().matches("connection dropped").count() >= 2,
        "the drops to be logged",
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
    let reply = server.get(GOOD);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(server.worker_pids().len(), 1, "the same worker serves on");
}

#[test]
fn sigterm_stops_the_pool_and_removes_the_socket() {
    let mut server = Server::start(&corpus());
    assert_eq!(server.get(GOOD).status, 200);
    let status = server.stop_imgworker(Signal::SIGTERM);
    assert!(status.success(), "clean exit: {status:?}");
    assert!(!server.socket.exists(), "the socket file is removed");
    let log = server.log();
    assert!(log.contains("master stopping signal=SIGTERM"), "{log}");
    assert_eq!(log.matches("worker stopping").count(), 2, "{log}");
    assert!(log.contains("master stopped"), "{log}");
}

#[test]
fn a_request_in_flight_finishes_before_the_pool_stops() {
    let mut server = Server::start_with(&corpus(), 1);
    // A 24 MP original at a large size takes a moment to render; a fast
    // stop (TERM) still lets it finish, as it takes well under 5 s.
    let slow = server
        .get_in_background("/img/w_2000/photos/milkyway-24mp-4000x6000.jpg");
    // Stop while it renders.
    std::thread::sleep(Duration::from_millis(150));
    let status = server.stop_imgworker(Signal::SIGTERM);
    assert!(status.success());
    assert_eq!(
        slow.join().unwrap().status,
        200,
        "the request in flight was answered"
    );
}

/// Graceful stop, ahead of the workers: before this was so, the two
/// connections waiting behind the renders got Nginx's 503 when the socket
/// closed, and the log said nothing of them.
#[test]
fn quit_serves_every_connection_already_waiting_in_the_queue() {
    let mut server = Server::start_with(&corpus(), 2);
    // Four slow requests for two workers: two render, two wait.
    let replies: Vec<_> =
        (0..4).map(|n| server.get_in_background(&slow(n))).collect();
    std::thread::sleep(Duration::from_millis(700));

    let status = server.stop_imgworker(Signal::SIGQUIT);
    assert!(status.success(), "clean exit: {status:?}");
    let statuses: Vec<u16> =
        replies.into_iter().map(|r| r.join().unwrap().status).collect();
    let log = server.log();
    assert_eq!(statuses, [200; 4], "every one is answered: {log}");
    assert!(
        log.contains("master stopping signal=SIGQUIT mode=graceful queued=2"),
        "two were waiting when the stop began: {log}"
    );
    assert_eq!(server.request_lines().len(), 4, "each is logged: {log}");
    let taken_from_the_queue: u32 = log
        .lines()
        .filter(|l| l.contains(" worker stopping "))
        .filter_map(|l| {
            l.split_whitespace().find_map(|f| f.strip_prefix("queued="))
        })
        .map(|n| n.parse::<u32>().unwrap())
        .sum();
    assert_eq!(taken_from_the_queue, 2, "the workers say so: {log}");
    assert!(log.contains("master stopped"), "{log}");
}

/// Graceful stop, behind the workers: the socket is gone at once, so a
/// new connection fails (Nginx answers 503) instead of waiting for
/// workers that are leaving.
#[test]
fn a_connection_made_after_quit_fails_fast() {
    let mut server = Server::start_with(&corpus(), 1);
    let in_hand = server.get_in_background(&slow(0));
    std::thread::sleep(Duration::from_millis(300));

    server.signal(Signal::SIGQUIT);
    server.wait_for(|s| !s.socket.exists(), "the socket to be removed");
    assert!(UnixStream::connect(&server.socket).is_err());
    let asked = Instant::now();
    let late = server.get(GOOD);
    assert_eq!(late.status, 503, "{}", late.text());
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "refused at once, not queued: {:?}",
        asked.elapsed()
    );

    assert_eq!(in_hand.join().unwrap().status, 200, "the render finishes");
    assert!(server.wait_for_exit().success());
    assert_eq!(server.request_lines().len(), 1, "{}", server.log());
}

/// Fast stop: only the requests in hand finish; what waits in the queue
/// is dropped with the socket, and the master says how many.
#[test]
fn a_fast_stop_says_how_many_queued_connections_it_dropped() {
    let mut server = Server::start_with(&corpus(), 1);
    let _in_hand = server.get_in_background(&slow(0));
    std::thread::sleep(Duration::from_millis(300));
    let queued = server.get_in_background(&slow(1));
    std::thread::sleep(Duration::from_millis(300));

    assert!(server.stop_imgworker(Signal::SIGTERM).success());
    assert_eq!(queued.join().unwrap().status, 503, "Nginx's busy answer");
    let log = server.log();
    assert!(log.contains("mode=fast queued=1"), "{log}");
    assert!(log.contains("master stopped pid="), "{log}");
    assert!(log.contains(" dropped=1; "), "{log}");
}

#[test]
fn a_stop_that_runs_out_of_time_names_each_request_it_kills() {
    let mut server =
        Server::start_configured(&corpus(), 1, "shutdown_timeout_s = 1\n");
    // Seconds of work: still rendering when the second is up.
    let url = "/img/w_3000,f_avif/photos/milkyway-24mp-4000x6000.jpg";
    let in_hand = server.get_in_background(url);
    std::thread::sleep(Duration::from_millis(300));

    assert!(server.stop_imgworker(Signal::SIGQUIT).success());
    assert_eq!(in_hand.join().unwrap().status, 503, "Nginx's busy answer");
    let log = server.log();
    let lost = log.lines().find(|l| l.contains("request lost")).unwrap();
    assert!(lost.contains(&format!("uri={url:?}")), "{lost}");
    assert!(log.contains(" lost=1; "), "{log}");
}

/// Under socket activation the socket is systemd's: a graceful stop
/// neither removes it nor empties its queue, and the next start serves
/// what waits there.
#[test]
fn under_socket_activation_the_queue_waits_for_the_next_start() {
    use imgworker::sys::listen_queue;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("activated.sock");
    let socket = UnixListener::bind(&path).unwrap();
    let queued = || listen_queue(&socket).expect("sock_diag answers").0;
    let (mut first, log) = serve_activated(&socket, dir.path(), "first");
    wait_until(|| read(&log).contains("pool ready"), &log);

    let in_hand = fastcgi_get_in_background(&path, &slow(0));
    wait_until(|| queued() == 0, &log);
    let waiting = fastcgi_get_in_background(&path, &slow(1));
    wait_until(|| queued() == 1, &log);
    kill(Pid::from_raw(first.id() as i32), Signal::SIGQUIT).unwrap();
    assert!(first.wait().unwrap().success(), "{}", read(&log));
    assert!(in_hand.join().unwrap(), "the request in hand: {}", read(&log));
    assert!(path.exists(), "the socket file is systemd's to remove");
    assert_eq!(queued(), 1, "the queued connection is still there");
    assert!(read(&log).contains("queued=1; they wait"), "{}", read(&log));

    let (mut second, log) = serve_activated(&socket, dir.path(), "second");
    assert!(waiting.join().unwrap(), "served by the next start");
    kill(Pid::from_raw(second.id() as i32), Signal::SIGQUIT).unwrap();
    assert!(second.wait().unwrap().success(), "{}", read(&log));
}

/// Starts a one-worker pool on `socket` as systemd would pass it
/// (`LISTEN_FDS`, fd 3); the child and its log file.
fn serve_activated(
    socket: &UnixListener,
    dir: &Path,
    name: &str,
) -> (Child, PathBuf) {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};

    let fd = socket.as_raw_fd();
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    let onto_3 =
        if fd == 3 { String::new() } else { format!("3<&{fd} {fd}<&-") };
    let log = dir.join(format!("{name}.log"));
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\" {onto_3}"))
        .arg(env!("CARGO_BIN_EXE_imgworker"))
        .args(["serve", "--workers", "1", "--socket"])
        .arg(dir.join("activated.sock"))
        .arg("--source-root")
        .arg(corpus())
        .arg("--cache-root")
        .arg(dir.join(format!("{name}-cache")))
        .env("RUST_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Waits up to 20 s for `ready`.
fn wait_until(ready: impl Fn() -> bool, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out:\n{}", read(log));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// GETs `uri` straight over FastCGI, as Nginx would, in a thread of its
/// own; the handle says whether the answer was 200.
fn fastcgi_get_in_background(
    socket: &Path,
    uri: &str,
) -> std::thread::JoinHandle<bool> {
    use imgworker::fastcgi::{params, record};
    let mut block = Vec::new();
    for (name, value) in [
        ("REQUEST_METHOD", "GET"),
        ("DOCUMENT_URI", uri),
        ("REQUEST_URI", uri),
    ] {
        params::encode(name.as_bytes(), value.as_bytes(), &mut block);
    }
    let role = record::RESPONDER.to_be_bytes();
    let begin = [role[0], role[1], 0, 0, 0, 0, 0, 0];
    let mut request = Vec::new();
    record::push_record(&mut request, record::BEGIN_REQUEST, 1, &begin);
    record::push_record(&mut request, record::PARAMS, 1, &block);
    record::push_record(&mut request, record::PARAMS, 1, &[]);
    record::push_record(&mut request, record::STDIN, 1, &[]);
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(&request).unwrap();
    std::thread::spawn(move || {
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer.windows(11).any(|w| w == b"Status: 200")
    })
}

#[test]
fn a_pool_whose_workers_cannot_start_gives_up_loudly() {
    let dir = tempfile::tempdir().unwrap();
    // A cache root whose name the file system cannot hold: the config
    // checks out (its parent is writable), the workers cannot create it.
    let (started, log) = crate::harness::serve_to_the_end(
        &dir.path().join("s.sock"),
        &corpus(),
        &dir.path().join("n".repeat(300)).join("cache"),
    );
    assert!(!started);
    assert!(log.contains("worker boot failed"), "{log}");
    assert!(log.contains("cache_root: "), "{log}");
    assert!(!dir.path().join("s.sock").exists());

    // A missing source root is refused before any worker starts.
    let (started, log) = crate::harness::serve_to_the_end(
        &dir.path().join("s.sock"),
        &dir.path().join("no-such-source-root"),
        &dir.path().join("cache"),
    );
    assert!(!started);
    assert!(log.contains("no-such-source-root does not exist"), "{log}");

    // So is a cache root under a file.
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let (started, log) = crate::harness::serve_to_the_end(
        &dir.path().join("s.sock"),
        &corpus(),
        &dir.path().join("file/cache"),
    );
    assert!(!started);
    assert!(log.contains("file is not a directory"), "{log}");
    assert!(!log.contains("worker boot failed"), "{log}");
}

#[test]
fn a_worker_retires_after_max_requests_and_is_replaced() {
    let server = Server::start_configured(&corpus(), 1, "max_requests = 3\n");
    let first = server.worker_pids();
    for n in 0..3 {
        let reply = server.get(&format!(
            "/img/w_{}/photos/flickr-saw-2725x2225.jpg",
            60 + n
        ));
        assert_eq!(reply.status, 200);
    }
    server.wait_for(
        |s| s.log().contains("reason=max_requests"),
        "the retirement",
    );
    server.wait_for(
        |s| s.worker_pids().len() == 1 && s.worker_pids() != first,
        "the replacement",
    );
    assert_eq!(server.get("/imgworker-ping").status, 200);
    assert!(!server.log().contains("master giving up"));
}

#[test]
fn workers_killed_one_after_another_never_make_the_master_give_up() {
    let server = Server::start_with(&corpus(), 1);
    // Six deaths in quick succession, each of a worker that was serving:
    // not start-up failures, however young the worker.
    for _ in 0..6 {
        let victim = server.worker_pids()[0];
        kill(Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
        server.wait_for(
            |s| matches!(s.worker_pids().as_slice(), [pid] if *pid != victim),
            "a replacement",
        );
    }
    assert!(!server.log().contains("giving up"), "{}", server.log());
    assert_eq!(server.get(GOOD).status, 200);
}

#[test]
fn a_request_past_the_time_limit_costs_its_worker_and_only_that_request() {
    let server =
        Server::start_configured(&corpus(), 1, "request_time_limit_s = 1\n");
    let before = server.worker_pids();
    // Far more than a second of work.
    let slow =
        server.get("/img/w_4000,f_avif/photos/milkyway-24mp-4000x6000.jpg");
    assert_eq!(slow.status, 503, "{}", slow.text());
    assert_eq!(slow.header("retry-after"), Some("5"));
    server.wait_for(
        |s| s.worker_pids().len() == 1 && s.worker_pids() != before,
        "the replacement",
    );
    // The kill names the request, and so does its loss.
    let log = server.log();
    let uri = "uri=\"/img/w_4000,f_avif/photos/milkyway-24mp-4000x6000.jpg\"";
    let stuck = log.lines().find(|l| l.contains("worker stuck")).unwrap();
    assert!(stuck.contains(uri), "{stuck}");
    assert!(log.contains("worker killed"), "{log}");
    let lost = log.lines().find(|l| l.contains("request lost")).unwrap();
    assert!(lost.contains(uri), "{lost}");
    assert!(lost.contains("its worker died"), "{lost}");
    assert_eq!(server.get(GOOD).status, 200, "the next request is served");
}

#[test]
fn a_worker_over_max_rss_mb_retires_after_its_request() {
    let server = Server::start_configured(&corpus(), 1, "max_rss_mb = 1\n");
    assert_eq!(server.get(GOOD).status, 200);
    server
        .wait_for(|s| s.log().contains("reason=max_rss_mb"), "the retirement");
    server.wait_for(|s| s.worker_pids().len() == 1, "the replacement");
    assert_eq!(server.get("/imgworker-ping").status, 200);
}
