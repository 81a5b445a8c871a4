//! The load generator in smoke mode (tiny counts) against a real server, both paths, so the
//! harness never rots.

use std::time::Duration;

use bench::{PathKind, chat_room, echo, fanout, idle, members, rooms, setup};
use server::{Application, Settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_runs_each_scenario_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::with_bind("127.0.0.1:0".parse().unwrap());
    settings.db = dir.path().join("smoke.db");
    settings.static_dir = dir.path().to_owned();
    settings.bench_relay = true;
    settings.rate_per_sec = 100_000;
    settings.rate_burst = 100_000;
    let app = Application::build(settings).await.unwrap();
    let addr = app.local_addr();
    let stop = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    for path in [PathKind::Raw, PathKind::Switchboard] {
        let e = echo(addr, path, 4, 20, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(e.delivered > 0 && e.p50_us > 0, "{e:?}");
        let f = fanout(addr, path, 5, 50, 64, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(f.expected, 50 * 5, "{f:?}");
        assert_eq!(f.delivered, f.expected, "{f:?}");
        assert!(f.p99_us > 0, "{f:?}");
        let i = idle(addr, path, 20, Some(std::process::id()))
            .await
            .unwrap();
        assert_eq!(i.delivered, 20, "every idle connection is alive: {i:?}");
        assert!(i.rss_per_conn_kib.is_some(), "{i:?}");
        let c = chat_room(addr, path, 4, 32, Duration::from_millis(500))
            .await
            .unwrap();
        assert!(c.delivered > 0 && c.p50_us > 0, "{c:?}");
        // Every receipt is one of the messages owed to the others.
        assert!(c.delivered <= c.expected, "{c:?}");
        let s = setup(addr, path, 40, 8).await.unwrap();
        assert_eq!(s.delivered, 40, "every connect succeeds: {s:?}");
        println!(
            "smoke {path:?}: echo {:.0}/s p50 {} µs; fanout {} of {} p99 {} µs",
            e.per_sec, e.p50_us, f.delivered, f.expected, f.p99_us
        );
    }
    // Members of one room: named ones hear of each other (presence), nameless ones do not;
    // every one gets the chat that checks it is alive.
    let named = members(addr, PathKind::Switchboard, 12, true, None)
        .await
        .unwrap();
    assert_eq!(named.delivered, 12, "{named:?}");
    assert!(named.presence_frames.unwrap() > 0, "{named:?}");
    let nameless = members(addr, PathKind::Switchboard, 12, false, None)
        .await
        .unwrap();
    assert_eq!(nameless.delivered, 12, "{nameless:?}");
    assert_eq!(nameless.presence_frames, Some(0), "{nameless:?}");
    // 12 rooms of 3 members: every message reaches its room's 3.
    let r = rooms(addr, 12, 3, 40, 64, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!((r.expected, r.delivered), (40 * 3, 40 * 3), "{r:?}");
    stop.cancel();
    server.await.unwrap().unwrap();
}
