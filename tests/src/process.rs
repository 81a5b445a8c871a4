//! Servers as separate processes: the `server` binary (so a test can SIGKILL it) and a real
//! `redis-server` on a free port with its data in a temporary directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::Endpoint;

/// The server binary: `$SWITCHBOARD_SERVER_BIN` (e.g. a release build, for figures), else the
/// debug build of the current sources. `cargo build` runs once per test process, whether or
/// not a binary exists: an existing one may be from older sources, and a test of it would test
/// the wrong code. On a warm target the build is a no-op of about a second.
pub fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    if let Some(bin) = std::env::var_os("SWITCHBOARD_SERVER_BIN") {
        return bin.into();
    }
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test path");
            let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "-q", "-p", "server", "--bin", "server"])
                .status()
                .expect("cargo build");
            assert!(status.success(), "building the server binary failed");
            dir.join("server")
        })
        .clone()
}

/// A server process; killed when dropped.
pub struct ServerProcess {
    pub endpoint: Endpoint,
    child: Child,
    /// Holds the database unless the caller gave its own `--db`.
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for ServerProcess {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl ServerProcess {
    /// Starts `server --bind <bind> --static-dir /nonexistent <args>` and waits until it listens.
    /// Without `--db` in `args` the database is a fresh file in a temporary directory.
    pub async fn start(bind: &str, args: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(server_binary());
        command
            .args(["--bind", bind, "--static-dir", "/nonexistent"])
            .args(args);
        if !args.iter().any(|a| a == "--db") {
            command.arg("--db").arg(dir.path().join("switchboard.db"));
        }
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    return addr.parse::<SocketAddr>().expect("address");
                }
            }
            panic!("server exited before listening");
        })
        .await
        .expect("server listening");
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            endpoint: Endpoint { addr },
            child,
            _dir: dir,
        }
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        crate::rss_kib_of(self.child.id().expect("server running"))
    }

    /// SIGTERM, as an operator stopping the server would; waits for it to exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("server running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM {pid}");
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("server exits after SIGTERM")
            .expect("wait")
    }

    /// SIGKILL: no shutdown, nothing flushed or released.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }
}

/// A `redis-server` with AOF persistence (`appendfsync always`), as the cluster mode requires.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = free_port();
        let mut redis = Self {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL");
            let _ = child.wait().await;
        }
    }

    /// Kills Redis and starts it again with no data, as a Redis without persistence would come
    /// back.
    pub async fn wipe(&mut self) {
        self.kill().await;
        self.dir = tempfile::tempdir().expect("temp dir");
        self.restart().await;
    }

    /// Starts (again) on the same port and directory; returns once it accepts connections.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        tokio::time::timeout(Duration::from_secs(10), async {
            while TcpStream::connect(&addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("redis-server listening");
    }
}

/// A free port below Linux's ephemeral range (32768–60999), for a server that must come back
/// on the same port (Redis restarts). Servers on port 0 get ephemeral ports, so a parallel
/// test can never take this one while its Redis is down; ports handed out in this process are
/// never handed out again.
fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static BASE: OnceLock<u16> = OnceLock::new();
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = *BASE.get_or_init(|| rand::random::<u16>() % SPAN);
    for _ in 0..SPAN {
        let offset = (base + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) % SPAN;
        let port = FIRST + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN);
}
