//! The load generator. Prints one JSON report per run on stdout.
//!
//! ```text
//! loadgen --addr 127.0.0.1:3000 --scenario echo --path raw --conns 100 --payload 20 --secs 10
//! loadgen --addr 127.0.0.1:3000 --scenario fanout --path switchboard --conns 1000 --rate 200
//! loadgen --addr 127.0.0.1:3001 --scenario fanout --path switchboard-v2 --conns 1000 --rate 200
//! loadgen --addr 127.0.0.1:3000 --scenario members --path switchboard --conns 10000
//! loadgen --addr 127.0.0.1:3000 --scenario rooms --conns 10000 --per-conn 10 --rate 2000
//! ```
//! With `--server-pid`, the server's CPU use over the run is read from `/proc`; the
//! load generator's own is always reported, and the run is flagged `client_bound` when the
//! load generator used more than 90% of its core (the figure then says more about the client).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bench::{PathKind, chat_room, cpu_secs, echo, fanout, idle, members, rooms, setup};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    Echo,
    Fanout,
    Idle,
    /// N clients in one room, all sending, closed loop.
    Chat,
    /// `--conns` connects, `--inflight` at a time.
    Setup,
    /// `--conns` named members joining one room (chat path).
    Members,
    /// `--conns` nameless listeners joining one room (chat path).
    MembersNameless,
    /// `--conns` rooms of `--per-conn` members, each connection in `--per-conn` rooms,
    /// `--rate` messages a second in all (chat path, protocol v3).
    Rooms,
}

#[derive(Debug, Parser)]
struct Args {
    /// Server address.
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// `raw` (/echo, /relay), `switchboard` (/ws chat path, protocol v3) or `switchboard-v2`
    /// (/ws as servers before v3 spoke it: room in the query, no subprotocol; for a baseline).
    #[arg(long, value_enum, default_value = "raw")]
    path: PathKind,
    /// Echo connections, or fan-out receivers.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Payload bytes.
    #[arg(long, default_value_t = 20)]
    payload: usize,
    /// Fan-out publish rate, messages per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Connects in flight at once (setup).
    #[arg(long, default_value_t = 64)]
    inflight: usize,
    /// Rooms each connection joins (rooms).
    #[arg(long, default_value_t = 10)]
    per_conn: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// The server's PID, to report its CPU use.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A label for the server in the report.
    #[arg(long, default_value = "server")]
    label: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pid = args.server_pid.map(|p| p.to_string());
    let server_cpu_before = pid.as_deref().and_then(cpu_secs);
    let own_before = cpu_secs("self");
    let started = Instant::now();
    let duration = Duration::from_secs(args.secs);
    let report = match args.scenario {
        Scenario::Echo => echo(args.addr, args.path, args.conns, args.payload, duration).await?,
        Scenario::Fanout => {
            fanout(
                args.addr,
                args.path,
                args.conns,
                args.rate,
                args.payload,
                duration,
            )
            .await?
        }
        Scenario::Idle => idle(args.addr, args.path, args.conns, args.server_pid).await?,
        Scenario::Chat => {
            chat_room(args.addr, args.path, args.conns, args.payload, duration).await?
        }
        Scenario::Setup => setup(args.addr, args.path, args.conns, args.inflight).await?,
        Scenario::Members | Scenario::MembersNameless => {
            let named = matches!(args.scenario, Scenario::Members);
            members(args.addr, args.path, args.conns, named, args.server_pid).await?
        }
        Scenario::Rooms => {
            rooms(
                args.addr,
                args.conns,
                args.per_conn,
                args.rate,
                args.payload,
                duration,
            )
            .await?
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = match (pid.as_deref().and_then(cpu_secs), server_cpu_before) {
        (Some(after), Some(before)) => Some((after - before) / wall),
        _ => None,
    };
    let loadgen_cpu = match (cpu_secs("self"), own_before) {
        (Some(after), Some(before)) => (after - before) / wall,
        _ => 0.0,
    };
    let mut json = serde_json::to_value(&report)?;
    json["server"] = args.label.into();
    json["server_cpu"] = server_cpu.into();
    json["loadgen_cpu"] = loadgen_cpu.into();
    json["client_bound"] = (loadgen_cpu > 0.9).into();
    println!("{json}");
    Ok(())
}
