//! Operating the pool: the status page and ping, reloads under load,
//! bad configurations, check-config, and the systemd units.

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::{Originals, Server, corpus};

fn field(page: &str, key: &str) -> String {
    page.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in:\n{page}"))
        .trim()
        .to_string()
}

#[test]
fn status_counts_match_the_requests_sent_in_every_format() {
    let server = Server::start(&corpus());
    for n in 1..=5 {
        let url =
            format!("/img/w_{}/photos/pool-square-1535x1535.jpg", 40 + n);
        assert_eq!(server.get(&url).status, 200);
        // The repeat is a hit: Nginx answers, no worker counts it.
        assert_eq!(server.get(&url).header("x-imgworker"), Some("hit"));
    }

    // The status request itself is the sixth connection accepted.
    let text = server.get("/imgworker-status");
    assert_eq!(text.status, 200);
    assert_eq!(text.header("content-type"), Some("text/plain; charset=utf-8"));
    let page = text.text();
    assert_eq!(field(&page, "pool"), "imgworker");
    assert_eq!(field(&page, "accepted conn"), "6");
    assert_eq!(field(&page, "rendered"), "5");
    assert_eq!(field(&page, "total processes"), "2");
    assert_eq!(field(&page, "active processes"), "1", "the one answering");
    assert_eq!(field(&page, "listen queue"), "0");
    assert!(field(&page, "listen queue len").parse::<u32>().unwrap() > 0);

    let json = server.get("/imgworker-status?json&full");
    assert_eq!(json.header("content-type"), Some("application/json"));
    let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(value["accepted conn"], 7);
    assert_eq!(value["rendered"], 5);
    let processes = value["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 2);
    let per_worker: u64 =
        processes.iter().map(|p| p["rendered"].as_u64().unwrap()).sum();
    assert_eq!(per_worker, 5);

    let metrics = server.get("/imgworker-status?openmetrics").text();
    assert!(
        metrics.contains(
            "imgworker_accepted_connections_total{pool=\"imgworker\"} 8\n"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("imgworker_rendered_total{pool=\"imgworker\"} 5\n")
    );
    assert!(metrics.ends_with("# EOF\n"));

    let full = server.get("/imgworker-status?full").text();
    assert_eq!(full.matches("\npid:").count(), 2, "{full}");

    let ping = server.get("/imgworker-ping");
    assert_eq!((ping.status, ping.text().as_str()), (200, "pong\n"));
}

#[test]
fn a_reload_under_load_drops_no_request() {
    let server = Server::start(&corpus());
    // Every request a new derivative: each one is work.
    let load = server.start_load(4, |client, n| {
        format!(
            "/img/w_{},f_webp/photos/pool-square-1535x1535.jpg",
            100 + client * 500 + n
        )
    });

    for (generation, workers) in [(2, 3), (3, 1), (4, 2)] {
        std::thread::sleep(Duration::from_millis(500));
        std::fs::write(server.config_path(), format!("workers = {workers}\n"))
            .unwrap();
        server.signal(Signal::SIGHUP);
        let ready =
            format!("pool ready generation={generation} workers={workers}");
        server.wait_for(|s| s.log().contains(&ready), &ready);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let statuses: Vec<u16> =
        load.finish().into_iter().map(|(status, _)| status).collect();
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(statuses.len() > 10, "the load ran: {} requests", statuses.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        statuses.len()
    );
    server
        .wait_for(|s| s.worker_pids().len() == 2, "the last generation alone");
    let log = server.log();
    assert_eq!(log.matches("reloaded generation=").count(), 3, "{log}");
}

#[test]
fn a_bad_config_on_reload_keeps_the_running_workers() {
    let server = Server::start(&corpus());
    let before = server.worker_pids();
    std::fs::write(server.config_path(), "workers = \"many\"\n").unwrap();
    server.signal(Signal::SIGHUP);
    server.wait_for(|s| s.log().contains("reload failed"), "the refusal");
    let log = server.log();
    assert!(
        log.contains("reload failed, keeping the running workers"),
        "{log}"
    );
    assert!(
        log.contains("imgworker.toml: line 1:"),
        "names file and line: {log}"
    );
    assert_eq!(server.worker_pids(), before);
    let reply = server.get("/img/w_50/photos/flickr-saw-2725x2225.jpg");
    assert_eq!(reply.status, 200);
}

#[test]
fn a_reload_whose_source_root_is_gone_keeps_the_running_workers() {
    let originals = Originals::new();
    originals.add("a.jpg", &corpus().join("photos/flickr-saw-2725x2225.jpg"));
    let server = Server::start(&originals.root);
    let before = server.worker_pids();
    // The running workers hold the root open; the new config's is gone.
    std::fs::rename(&originals.root, originals.dir.path().join("moved"))
        .unwrap();
    server.signal(Signal::SIGHUP);
    server.wait_for(|s| s.log().contains("reload failed"), "the refusal");
    assert!(server.log().contains("source_root: "), "says why");
    assert_eq!(server.worker_pids(), before);
    assert_eq!(server.get("/img/w_50/a.jpg").status, 200, "old workers serve");
}

#[test]
fn quit_stops_gracefully() {
    let mut server = Server::start(&corpus());
    assert_eq!(server.get("/imgworker-ping").status, 200);
    let status = server.stop_imgworker(Signal::SIGQUIT);
    assert!(status.success());
    let log = server.log();
    assert!(
        log.contains("master stopping signal=SIGQUIT mode=graceful"),
        "{log}"
    );
    assert!(!server.socket.exists());
}

#[test]
fn a_reload_warns_of_what_it_cannot_change_against_the_socket_as_bound() {
    let server = Server::start_configured(&corpus(), 1, "");
    let reload = |text: &str, generation: u32| {
        std::fs::write(server.config_path(), format!("workers = 1\n{text}"))
            .unwrap();
        server.signal(Signal::SIGHUP);
        server.wait_for(
            |s| s.log().contains(&format!("reloaded generation={generation}")),
            "the reload",
        );
    };
    let warnings = |server: &Server| {
        server.log().matches("reload cannot change listen_backlog").count()
    };
    reload("listen_backlog = 16\n", 2);
    assert_eq!(warnings(&server), 1, "the socket keeps its queue");
    // Put back: the socket as bound is what it compares with.
    reload("", 3);
    assert_eq!(warnings(&server), 1, "{}", server.log());
}

#[test]
fn check_config_accepts_the_example_and_names_the_key_of_a_bad_file() {
    let project = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    // The shipped example, pointed at a source root that exists here.
    let example =
        std::fs::read_to_string(project.join("imgworker.toml")).unwrap();
    let good = dir.path().join("imgworker.toml");
    let root = corpus().canonicalize().unwrap();
    std::fs::write(&good, format!("source_root = {root:?}\n{example}"))
        .unwrap();
    let ok = Command::new(env!("CARGO_BIN_EXE_imgworker"))
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(
        String::from_utf8_lossy(&ok.stdout).ends_with("imgworker.toml: ok\n")
    );

    let table = [
        ("workers = \"two\"\n", "bad.toml: line 1: workers: invalid type"),
        (
            "source_root = \"/nonexistent/originals\"\n",
            "bad.toml: source_root: /nonexistent/originals does not exist",
        ),
        (
            "workers = 2\nqualty = 5\n",
            "bad.toml: line 2: unknown field `qualty`",
        ),
        ("jpeg_quality = 500\n", "bad.toml: line 1:"),
        (
            "webp_quality = 0\n",
            "bad.toml: webp_quality: 0 is not between 1 and 100",
        ),
        (
            "log_level = \"loud\"\n",
            "bad.toml: log_level: \"loud\" is not one of",
        ),
        (
            "cache_root = \"relative\"\n",
            "bad.toml: cache_root: relative is not an absolute path",
        ),
    ];
    for (text, message) in table {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let bad = Command::new(env!("CARGO_BIN_EXE_imgworker"))
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!bad.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&bad.stderr);
        let stderr = stderr.replace(&format!("{}/", dir.path().display()), "");
        assert!(stderr.starts_with(message), "{text:?}: {stderr}");
    }
}

#[test]
fn check_config_refuses_roots_the_service_user_cannot_use() {
    // The service's ExecStartPre runs check-config as the service's user:
    // what that user cannot read or write must fail there, not later in a
    // worker. Run as root, the check is made as nobody.
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::Builder::new()
        .prefix("imgworker-perm")
        .tempdir_in("/tmp")
        .unwrap();
    let mode = |path: &std::path::Path, bits| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits))
            .unwrap()
    };
    mode(dir.path(), 0o755);
    let (readable, closed, read_only) = (
        dir.path().join("src"),
        dir.path().join("closed"),
        dir.path().join("ro"),
    );
    for (path, bits) in
        [(&readable, 0o755), (&closed, 0o700), (&read_only, 0o555)]
    {
        std::fs::create_dir(path).unwrap();
        mode(path, bits);
    }
    // Root reads everything: drop to nobody. Without root, a closed
    // directory of our own is still ours to read, so only the cache case
    // can be made.
    let as_nobody = nix::unistd::geteuid().is_root();
    let table = [
        (
            &closed,
            &dir.path().join("cache"),
            "source_root",
            "cannot be read by uid",
        ),
        (
            &readable,
            &read_only.join("cache"),
            "cache_root",
            "cannot be written by uid",
        ),
    ];
    for (source, cache, key, message) in table {
        if !as_nobody && key == "source_root" {
            continue;
        }
        let file = dir.path().join("imgworker.toml");
        std::fs::write(
            &file,
            format!("source_root = {source:?}\ncache_root = {cache:?}\n"),
        )
        .unwrap();
        mode(&file, 0o644);
        let mut command = Command::new(env!("CARGO_BIN_EXE_imgworker"));
        command.arg("check-config").arg(&file);
        if as_nobody {
            command.uid(65534).gid(65534);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}: {stderr}");
        assert!(stderr.contains(&format!("{key}: ")), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
}

#[test]
fn sweep_refuses_a_cache_root_inside_the_originals_and_deletes_nothing() {
    // An original named like a derivative, under what would be the cache.
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("img/gallery/holiday.jpg");
    std::fs::create_dir_all(original.parent().unwrap()).unwrap();
    std::fs::copy(corpus().join("photos/flickr-saw-2725x2225.jpg"), &original)
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_imgworker"))
        .args(["sweep", "--config", "/nonexistent.toml", "--source-root"])
        .arg(dir.path())
        .arg("--cache-root")
        .arg(dir.path().join("img"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("overlap"), "{stderr}");
    assert!(original.exists(), "the original is kept");
}

#[test]
fn systemd_units_verify() {
    let Ok(version) =
        Command::new("systemd-analyze").arg("--version").output()
    else {
        panic!("systemd-analyze is missing: scripts/install-deps installs it");
    };
    assert!(version.status.success());
    let project = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    // The units name the installed binary; point them at the built one.
    for unit in [
        "imgworker.service",
        "imgworker.socket",
        "imgworker-sweep.service",
        "imgworker-sweep.timer",
    ] {
        let text = std::fs::read_to_string(project.join("systemd").join(unit))
            .unwrap();
        let text = text
            .replace("/usr/bin/imgworker", env!("CARGO_BIN_EXE_imgworker"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("imgworker.socket"))
        .arg(dir.path().join("imgworker.service"))
        .arg(dir.path().join("imgworker-sweep.timer"))
        .arg(dir.path().join("imgworker-sweep.service"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.trim().is_empty(), "{stderr}");
}

fn cache_command(server: &Server, args: &[&str]) -> String {
    let mut all: Vec<std::ffi::OsString> =
        args.iter().map(|a| a.into()).collect();
    all.push("--config".into());
    all.push(server.dir.path().join("absent.toml").into());
    all.push("--cache-root".into());
    all.push(server.cache_root.clone().into());
    all.push("--source-root".into());
    all.push(server.source_root.clone().into());
    crate::harness::imgworker_ok(all)
}

#[test]
fn purge_and_sweep_work_on_a_live_cache() {
    let originals = Originals::new();
    let photo = corpus().join("photos/flickr-saw-2725x2225.jpg");
    originals.add("a.jpg", &photo).add("b.jpg", &photo).add("c.jpg", &photo);
    let server = Server::start(&originals.root);
    let accept = [("Accept", "image/webp,*/*")];
    for name in ["a.jpg", "b.jpg", "c.jpg"] {
        for options in ["w_100", "w_100,f_png", "w_100,f_auto"] {
            let reply =
                server.get_with(&format!("/img/{options}/{name}"), &accept);
            assert_eq!(reply.status, 200);
        }
    }
    assert_eq!(server.cache_files().len(), 9);

    // Purge: every derivative of a.jpg, and only those.
    let line = cache_command(&server, &["purge", "a.jpg"]);
    assert_eq!(line, "purged originals=1 derivatives=3\n");
    assert_eq!(
        server.get("/img/w_100/a.jpg").header("x-imgworker"),
        Some("miss")
    );
    assert_eq!(
        server.get("/img/w_100/b.jpg").header("x-imgworker"),
        Some("hit")
    );

    // Sweep: b.jpg changes, c.jpg goes; their derivatives follow.
    let later = std::time::SystemTime::now() + Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(originals.root.join("b.jpg"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    std::fs::remove_file(originals.root.join("c.jpg")).unwrap();
    let line = cache_command(&server, &["sweep"]);
    assert!(
        line.starts_with(
            "swept stale=3 orphaned=3 evicted=0 temporary=0 kept=1 "
        ),
        "{line}"
    );
    // Nginx checks a file it served as a hit again after a second
    // (open_file_cache_valid in the snippet); until then it may serve
    // the removed file once more.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        server.get("/img/w_100/a.jpg").header("x-imgworker"),
        Some("hit")
    );
    assert_eq!(
        server.get("/img/w_100/b.jpg").header("x-imgworker"),
        Some("miss")
    );
    assert_eq!(server.get("/img/w_100/c.jpg").status, 404);

    // A size bound leaves at most that many bytes.
    let line = cache_command(&server, &["sweep", "--max-bytes", "1"]);
    assert!(line.contains(" kept=0 kept_bytes=0"), "{line}");
    assert_eq!(server.cache_files(), Vec::<String>::new());
    assert_eq!(
        server.get("/img/w_100/a.jpg").status,
        200,
        "the pool serves on"
    );
}

#[test]
fn systemd_hears_ready_status_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;

    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&notify).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgworker"))
        .args(["serve", "--workers", "2", "--socket"])
        .arg(dir.path().join("s.sock"))
        .arg("--source-root")
        .arg(corpus())
        .arg("--cache-root")
        .arg(dir.path().join("cache"))
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Reads notifications until one contains `wanted`.
    let wait_for = |wanted: &str| {
        let mut buf = [0u8; 512];
        loop {
            let n = systemd.recv(&mut buf).expect("a notification in time");
            if String::from_utf8_lossy(&buf[..n]).contains(wanted) {
                return;
            }
        }
    };
    wait_for(
        "READY=1\nSTATUS=workers: 2 idle, 0 busy, 0 starting; requests: 0",
    );
    wait_for("WATCHDOG=1");
    nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
    wait_for("RELOADING=1");
    wait_for("READY=1");
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    wait_for("STOPPING=1");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_file_in_the_sockets_place_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "precious").unwrap();
    let (started, log) = crate::harness::serve_to_the_end(
        &precious,
        &corpus(),
        &dir.path().join("cache"),
    );
    assert!(!started);
    assert!(log.contains("exists and is not a socket"), "{log}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "precious");
}

#[test]
fn purge_refuses_paths_that_leave_the_cache() {
    let server = Server::start(&corpus());
    let output = Command::new(env!("CARGO_BIN_EXE_imgworker"))
        .args(["purge", "--cache-root"])
        .arg(&server.cache_root)
        .args(["--source-root"])
        .arg(&server.source_root)
        .args(["--config", "/nonexistent.toml", "../../victim.jpg"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("dot segment"), "{stderr}");
}
