use clap::Parser;
use server::{Application, Settings, app::shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let settings = Settings::parse();
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, "listening");
    // Scripts and tests read the chosen port from this line.
    println!("listening on http://{addr}");
    app.run_until_stopped(shutdown_signal()).await
}
