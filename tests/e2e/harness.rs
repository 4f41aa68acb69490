//! Starts imgworker and Nginx for one test and stops them after it.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The shared corpus of real images, beside the project.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// Runs `imgworker serve` to its end with one worker and these paths, for
/// tests of a pool that must refuse to start; its exit and its log.
pub fn serve_to_the_end(
    socket: &Path,
    source_root: &Path,
    cache_root: &Path,
) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_imgworker"))
        .args(["serve", "--workers", "1", "--socket"])
        .arg(socket)
        .arg("--source-root")
        .arg(source_root)
        .arg("--cache-root")
        .arg(cache_root)
        .output()
        .expect("imgworker runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs an `imgworker` command that must succeed; its standard output.
pub fn imgworker_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = Command::new(env!("CARGO_BIN_EXE_imgworker"))
        .args(args)
        .output()
        .expect("imgworker runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The shared cases, beside the project.
pub fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cases")
}

/// A running pair: Nginx on a loopback port, imgworker behind it.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub source_root: PathBuf,
    pub cache_root: PathBuf,
    pub socket: PathBuf,
    imgworker: Option<Child>,
    log: PathBuf,
}

/// One HTTP answer.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    /// Serves `source_root` with two workers.
    pub fn start(source_root: &Path) -> Server {
        Server::start_with(source_root, 2)
    }

    pub fn start_with(source_root: &Path, workers: usize) -> Server {
        Server::start_configured(source_root, workers, "")
    }

    /// Starts with `extra` lines added to the configuration file.
    pub fn start_configured(
        source_root: &Path,
        workers: usize,
        extra: &str,
    ) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("imgworker-test")
            .tempdir()
            .unwrap();
        // Nginx's workers may run as another user: let them in.
        set_mode(dir.path(), 0o755);
        let cache_root = dir.path().join("cache");
        let socket = dir.path().join("imgworker.sock");
        let log = dir.path().join("imgworker.log");
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        let port = free_port();

        let mut server = Server {
            port,
            source_root: source_root.canonicalize().unwrap(),
            cache_root,
            socket,
            imgworker: None,
            log,
            dir,
        };
        server.start_imgworker(workers, extra);
        server.start_nginx();
        server
    }

    fn start_imgworker(&mut self, workers: usize, extra: &str) {
        let log = std::fs::File::create(&self.log).unwrap();
        let config = format!("workers = {workers}\n{extra}");
        std::fs::write(self.config_path(), config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_imgworker"))
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .arg("--socket")
            .arg(&self.socket)
            .arg("--source-root")
            .arg(&self.source_root)
            .arg("--cache-root")
            .arg(&self.cache_root)
            .env("RUST_LOG", "debug")
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("imgworker starts");
        self.imgworker = Some(child);
        self.wait_for(
            |s| s.worker_pids().len() == workers,
            "workers to start",
        );
    }

    fn start_nginx(&self) {
        let project = Path::new(env!("CARGO_MANIFEST_DIR"));
        let run = self.dir.path().join("run");
        let template =
            std::fs::read_to_string(project.join("nginx/example.conf"))
                .unwrap();
        let is_root = nix::unistd::geteuid().is_root();
        let conf = template
            .replace("@RUN_DIR@", run.to_str().unwrap())
            .replace("@NGINX_DIR@", project.join("nginx").to_str().unwrap())
            .replace("@PORT@", &self.port.to_string())
            .replace("@CACHE_ROOT@", self.cache_root.to_str().unwrap())
            .replace("@SOCKET@", self.socket.to_str().unwrap())
            .replace("@USER_LINE@", if is_root { "user root;" } else { "" });
        let conf_path = self.dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let status = Command::new(nginx_binary())
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(run.join("nginx-error.log"))
            .status()
            .expect("nginx starts");
        assert!(status.success(), "nginx failed to start");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The configuration file imgworker was started with; a test may
    /// rewrite it and send SIGHUP.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("imgworker.toml")
    }

    /// `url` signed with `key`, by the library's own signer.
    pub fn signer_url(key: &str, url: &str) -> String {
        let signer = imgworker::signing::Signer::new(&[key.to_string()]);
        imgworker::signing::sign_url(&signer, url).unwrap()
    }

    /// Sends `signal` to the master.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.imgworker.as_ref().expect("imgworker running").id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .unwrap();
    }

    /// GET `path` through Nginx.
    pub fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[])
    }

    /// GET `path` with extra request headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        fetch(self.port, path, headers)
    }

    /// GET `path` in a thread of its own; join the handle for the reply.
    pub fn get_in_background(
        &self,
        path: &str,
    ) -> std::thread::JoinHandle<Reply> {
        let (port, path) = (self.port, path.to_string());
        std::thread::spawn(move || fetch(port, &path, &[]))
    }

    /// Starts `clients` clients that each GET `path(client, n)` for their
    /// n-th request, one after another, until [`Load::finish`].
    pub fn start_load(
        &self,
        clients: usize,
        path: fn(usize, usize) -> String,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let port = self.port;
        let threads = (0..clients)
            .map(|client| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut outcomes = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let reply = fetch(port, &path(client, n), &[]);
                        n += 1;
                        let retry = reply.header("retry-after").is_some();
                        if reply.status == 503 {
                            // A client told to retry waits a little.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        outcomes.push((reply.status, retry));
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Everything imgworker has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines of answered requests.
    pub fn request_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(" request status="))
            .map(str::to_string)
            .collect()
    }

    /// Pids of the workers alive now, from the lifecycle log lines.
    pub fn worker_pids(&self) -> Vec<u32> {
        let log = self.log();
        let field = |line: &str| -> Option<u32> {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix("pid="))
                .and_then(|p| p.parse().ok())
        };
        let mut pids: Vec<u32> = Vec::new();
        for line in log.lines() {
            if line.contains(" worker started ") {
                pids.extend(field(line));
            } else if (line.contains(" worker exited ")
                || line.contains(" worker killed "))
                && let Some(pid) = field(line)
            {
                pids.retain(|p| *p != pid);
            }
        }
        pids
    }

    /// Waits up to 20 s for `ready`.
    pub fn wait_for(&self, ready: impl Fn(&Server) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops imgworker with `signal` and returns its exit status.
    pub fn stop_imgworker(
        &mut self,
        signal: nix::sys::signal::Signal,
    ) -> std::process::ExitStatus {
        self.signal(signal);
        self.wait_for_exit()
    }

    /// Waits up to 30 s for imgworker, already told to stop, to exit.
    pub fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.imgworker.take().expect("imgworker running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "imgworker did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every derivative under the cache root, relative to it (the render
    /// locks in `.locks/` are not derivatives).
    pub fn cache_files(&self) -> Vec<String> {
        let mut files = Vec::new();
        let mut dirs = vec![self.cache_root.clone()];
        let locks = self.cache_root.join(".locks");
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path == locks {
                    continue;
                }
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let rel = path.strip_prefix(&self.cache_root).unwrap();
                    files.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        files.sort();
        files
    }
}

/// Clients started by [`Server::start_load`].
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<(u16, bool)>>>,
}

impl Load {
    /// Stops the clients; every request's status, and whether it carried
    /// `Retry-After`.
    pub fn finish(self) -> Vec<(u16, bool)> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    }
}

/// One GET to Nginx on `port`; a status of 0 if the connection failed.
fn fetch(port: u16, path: &str, headers: &[(&str, &str)]) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut request = agent.get(&url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let Ok(mut response) = request.call() else {
        return Reply { status: 0, headers: Vec::new(), body: Vec::new() };
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut body = Vec::new();
    let _ = response.body_mut().as_reader().read_to_end(&mut body);
    Reply { status, headers, body }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid_file = self.dir.path().join("run/nginx.pid");
        if let Ok(pid) = std::fs::read_to_string(pid_file)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if let Some(mut child) = self.imgworker.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ =
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- imgworker log ---\n{}", self.log());
        }
    }
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is installed (scripts/install-deps)")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap();
}

/// A source root of its own for a test: a directory in a temporary
/// directory, with `files` copied in from the corpus or the cases.
pub struct Originals {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Originals {
    pub fn new() -> Originals {
        let dir = tempfile::Builder::new()
            .prefix("imgworker-src")
            .tempdir()
            .unwrap();
        set_mode(dir.path(), 0o755);
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        Originals { dir, root }
    }

    pub fn add(&self, name: &str, from: &Path) -> &Originals {
        let to = self.root.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
        self
    }
}
