use clap::Parser;
use server::{Application, Settings, app::shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    // Invalid options exit with 2 and a message naming the option: clap does so for each
    // value it parses, `validate` for the rest.
    let settings = Settings::parse();
    if let Err(problem) = settings.validate() {
        eprintln!("error: {problem}\n\nFor more information, try '--help'.");
        std::process::exit(2);
    }
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, "listening");
    // Scripts and tests read the chosen port from this line.
    println!("listening on http://{addr}");
    app.run_until_stopped(shutdown_signal()).await
}
