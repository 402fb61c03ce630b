//! `foxrelay-local`: the stack on one machine, with no AWS account.
//!
//! ```text
//! foxrelay-local serve [--template PATH]
//! ```
//! Starts moto's server (unless `AWS_ENDPOINT_URL` is set), creates the
//! resources of `template.yaml` in it, starts the FoxReload simulator (unless
//! `FOXRELOAD_BASE_URL` is set), prints the settings a function needs to run
//! against them, and serves until Ctrl-C.

use foxrelay_local::{MotoServer, StackTemplate, provision};
use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
use foxrelay_shared::settings::names;
use foxreload_sim::{SimConfig, Simulator};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: foxrelay-local serve [--template PATH]";

#[tokio::main]
async fn main() -> ExitCode {
    foxrelay_shared::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let template = match parse_args(&args) {
        Ok(template) => template,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(template).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("foxrelay-local: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> Result<PathBuf, String> {
    match args {
        [cmd] if cmd == "serve" => Ok(default_template()),
        [cmd, flag, path] if cmd == "serve" && flag == "--template" => Ok(PathBuf::from(path)),
        [] => Err("no command given".into()),
        other => Err(format!("unknown arguments: {}", other.join(" "))),
    }
}

/// `./template.yaml` when run from the repository root, else the repository's.
fn default_template() -> PathBuf {
    let here = PathBuf::from("template.yaml");
    if here.exists() {
        here
    } else {
        StackTemplate::repository_path()
    }
}

async fn serve(template_path: PathBuf) -> Result<(), String> {
    let template = StackTemplate::load(&template_path).map_err(|e| e.to_string())?;

    let (endpoint, _moto) = match std::env::var(names::AWS_ENDPOINT_URL) {
        Ok(url) if !url.trim().is_empty() => (url, None),
        _ => {
            let moto = MotoServer::start().map_err(|e| e.to_string())?;
            (moto.endpoint_url(), Some(moto))
        }
    };
    let clients = AwsClients::new(&load_local(&LocalAws::new(&endpoint)).await);
    let resources = provision(&template, &clients, "foxrelay")
        .await
        .map_err(|e| e.to_string())?;

    let (base_url, api_key, _simulator) = match (
        std::env::var(names::FOXRELOAD_BASE_URL),
        std::env::var(names::FOXRELOAD_API_KEY),
    ) {
        (Ok(url), Ok(key)) => (url, key, None),
        _ => {
            let sim = Simulator::start(SimConfig::default())
                .await
                .map_err(|e| format!("the FoxReload simulator did not start: {e}"))?;
            (sim.base_url(), sim.api_key().to_owned(), Some(sim))
        }
    };

    let mut env = resources
        .function_environment(&template)
        .map_err(|e| e.to_string())?;
    env.insert(names::AWS_ENDPOINT_URL.into(), endpoint.clone());
    env.insert(names::FOXRELOAD_BASE_URL.into(), base_url);
    env.insert(names::FOXRELOAD_API_KEY.into(), api_key);
    env.insert("AWS_REGION".into(), LocalAws::REGION.into());
    env.insert("AWS_ACCESS_KEY_ID".into(), LocalAws::ACCESS_KEY_ID.into());
    env.insert(
        "AWS_SECRET_ACCESS_KEY".into(),
        LocalAws::SECRET_ACCESS_KEY.into(),
    );
    env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());

    println!("foxrelay local stack is up (Ctrl-C stops it).");
    println!("# AWS (moto) at {endpoint}; the functions' settings:");
    for (name, value) in &env {
        println!("export {name}='{value}'");
    }
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    println!("stopping");
    Ok(())
}
