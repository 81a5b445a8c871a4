//! Servers as separate processes: the `server` binary (so a test can SIGKILL it) and a real
//! `redis-server` on a free port with its data in a temporary directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::Endpoint;

/// The server binary: `$SWITCHBOARD_SERVER_BIN` (e.g. a release build, for figures), else the
/// one next to this test's (built on demand so `cargo test` alone works).
pub fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SWITCHBOARD_SERVER_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("server");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "server", "--bin", "server"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the server binary failed");
    }
    bin
}

/// A server process; killed when dropped.
pub struct ServerProcess {
    pub endpoint: Endpoint,
    child: Child,
}

impl std::ops::Deref for ServerProcess {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl ServerProcess {
    /// Starts `server --bind <bind> --static-dir /nonexistent <args>` and waits until it listens.
    pub async fn start(bind: &str, args: &[String]) -> Self {
        let mut child = Command::new(server_binary())
            .args(["--bind", bind, "--static-dir", "/nonexistent"])
            .args(args)
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
        }
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

/// A port the OS had free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
