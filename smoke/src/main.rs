//! `smoke SITE_URL --bucket BUCKET [--mode failover] ...`: run every check against a deployed
//! stack (or the devserver), print the table, exit 1 if any check failed. `scripts/smoke`
//! fills the options in from a CloudFormation stack.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = smoke::Cli::parse();
    let region = cli.region.clone();
    let options = cli.into_options()?;
    let s3 = smoke::bucket::client_from_environment(region, |name| std::env::var(name).ok())
        .await
        .context("the S3 client")?;
    let report = smoke::run(&options, s3).await;
    println!();
    print!("{}", report.table());
    Ok(ExitCode::from(report.exit_code()))
}
