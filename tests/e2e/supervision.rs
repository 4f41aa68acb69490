//! The master and its workers: killed workers are replaced, protocol
//! garbage is dropped, and a stop lets requests in flight finish.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Server, corpus};

const GOOD: &str = "/img/w_64/photos/flickr-saw-2725x2225.jpg";

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

#[test]
fn a_pool_whose_workers_cannot_start_gives_up_loudly() {
    let dir = tempfile::tempdir().unwrap();
    // A cache root under a file: the config checks out, the workers
    // cannot create it.
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let (started, log) = crate::harness::serve_to_the_end(
        &dir.path().join("s.sock"),
        &corpus(),
        &dir.path().join("file/cache"),
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
    assert!(log.contains("no-such-source-root is not a directory"), "{log}");
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
    assert!(server.log().contains("worker stuck"), "{}", server.log());
    server.wait_for(
        |s| s.worker_pids().len() == 1 && s.worker_pids() != before,
        "the replacement",
    );
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
