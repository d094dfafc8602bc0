//! The `autopilot` command line: parses the arguments, loads the AWS config (the SDK's usual
//! credential chain; `--endpoint-url` for a local stand-in) and runs one command.

use std::process::ExitCode;

use clap::Parser;
use presence_autopilot::cli::{self, Cli, Operations, Verdict};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(endpoint) = &cli.stack.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let aws = loader.load().await;
    let stack = cli.stack.clone().with_outputs(&aws).await;
    let ops = match Operations::new(aws, stack) {
        Ok(ops) => ops,
        Err(error) => return fail(&error),
    };
    let mut out = std::io::stdout().lock();
    match cli::run(cli, &ops, &mut out).await {
        Ok(Verdict::Fine) => ExitCode::SUCCESS,
        Ok(Verdict::Found) => ExitCode::from(1),
        Err(error) => fail(&error),
    }
}

fn fail(error: &cli::CliError) -> ExitCode {
    eprintln!("autopilot: {error}");
    ExitCode::from(error.exit_code())
}
