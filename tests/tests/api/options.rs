//! Every option is checked at start: a bad value stops the server binary with exit code 2 and
//! a message that names the option, before anything listens.

use std::process::Command;

use switchboard_tests::process::server_binary;

fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(server_binary())
        .args([
            "--bind",
            "127.0.0.1:0",
            "--static-dir",
            "/nonexistent",
            "--db",
        ])
        .arg(dir.path().join("options.db"))
        .args(args)
        .output()
        .expect("server runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "{args:?} started listening"
    );
    stderr
}

#[test]
fn invalid_options_exit_with_2_and_name_the_option() {
    for (args, option) in [
        (&["--max-history-page", "0"][..], "--max-history-page"),
        (
            &["--heartbeat-interval-secs", "0"],
            "--heartbeat-interval-secs",
        ),
        (
            &["--heartbeat-timeout-secs", "0"],
            "--heartbeat-timeout-secs",
        ),
        (&["--outbound-queue", "1"], "--outbound-queue"),
        (&["--rate-per-sec", "0"], "--rate-per-sec"),
        (&["--max-connections", "0"], "--max-connections"),
        (&["--presence-ttl-secs", "0"], "--presence-ttl-secs"),
        (&["--read-buffer-bytes", "10"], "--read-buffer-bytes"),
        (&["--trusted-proxies", "10.0.0.0/40"], "--trusted-proxies"),
        (&["--trusted-proxies", "proxy.example"], "--trusted-proxies"),
        (
            &["--allowed-origins", "chat.example.com"],
            "--allowed-origins",
        ),
        (&["--redis-url", "not a url"], "--redis-url"),
        (&["--api-rate-burst", "0"], "--api-rate-burst"),
        // A reconnect joins every room at once: the join burst must cover the room limit.
        (&["--max-rooms-per-connection", "64"], "--join-rate-burst"),
    ] {
        let stderr = refused(args);
        assert!(stderr.contains(option), "{args:?}: {stderr}");
    }
}

#[test]
fn the_documented_defaults_are_valid() {
    let settings = server::Settings::with_bind("127.0.0.1:0".parse().unwrap());
    assert_eq!(settings.validate(), Ok(()));
}
