//! The kit foxrelay's integration tests share.
//!
//! - One moto server per test binary ([`moto`]), started on a free loopback
//!   port through `python3` (or `FOXRELAY_PYTHON`) with `moto[server]`.
//! - A fresh set of the template's resources per test ([`stack`]): every name
//!   carries a random prefix, so tests in one binary never see each other's
//!   tables, queues or topics and need no reset.
//! - The SDK is configured explicitly for moto: endpoint, region `us-east-1`
//!   and static credentials; nothing is looked up elsewhere.

use aws_config::SdkConfig;
use foxrelay_local::{MotoServer, Provisioned, StackTemplate, provision};
use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
use std::sync::OnceLock;

/// The test binary's moto server, started on first use.
pub fn moto() -> &'static MotoServer {
    static MOTO: OnceLock<MotoServer> = OnceLock::new();
    MOTO.get_or_init(|| MotoServer::start().unwrap_or_else(|e| panic!("{e}")))
}

/// The SDK configuration for the test binary's moto server.
pub async fn aws_config() -> SdkConfig {
    load_local(&LocalAws::new(moto().endpoint_url())).await
}

/// The template's resources, freshly created for one test.
pub struct TestStack {
    pub clients: AwsClients,
    pub template: StackTemplate,
    pub resources: Provisioned,
    pub prefix: String,
}

/// Creates the resources of the repository's `template.yaml` under a prefix
/// unique to this call.
pub async fn stack() -> TestStack {
    let clients = AwsClients::new(&aws_config().await);
    let template =
        StackTemplate::load(&StackTemplate::repository_path()).unwrap_or_else(|e| panic!("{e}"));
    let prefix = unique_prefix();
    let resources = provision(&template, &clients, &prefix)
        .await
        .unwrap_or_else(|e| panic!("provisioning failed: {e}"));
    TestStack {
        clients,
        template,
        resources,
        prefix,
    }
}

/// `t` and 10 random hex digits: short enough for every AWS name limit.
pub fn unique_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
