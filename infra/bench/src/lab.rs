//! The local stack the AWS-backed sections run on: one moto server for the
//! whole run, a fresh set of the template's resources per section, and the
//! FoxReload simulator.

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription, ApiGatewayV2httpRequest,
};
use axum::http::{HeaderValue, Method, header};
use foxrelay_local::{MotoServer, Provisioned, StackTemplate, provision};
use foxrelay_shared::aws::{AwsClients, LocalAws, load_local};
use foxrelay_shared::settings::{Settings, names};
use foxrelay_shared::startup::Context;

pub use foxrelay_local::lambda::context as lambda_context;

/// A request as API Gateway's HTTP API (payload 2.0) hands it to
/// create-order; a body is sent as JSON.
pub fn http_request(
    method: Method,
    path: &str,
    body: Option<&serde_json::Value>,
    idempotency_key: Option<&str>,
) -> ApiGatewayV2httpRequest {
    let mut request = ApiGatewayV2httpRequest::default();
    request.version = Some("2.0".into());
    request.route_key = Some("$default".into());
    request.raw_path = Some(path.into());
    if let Some(body) = body {
        request.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        request.body = Some(body.to_string());
    }
    if let Some(key) = idempotency_key.and_then(|k| HeaderValue::from_str(k).ok()) {
        request.headers.insert("idempotency-key", key);
    }
    request.request_context.http.method = method;
    request.request_context.http.path = Some(path.into());
    request.request_context.stage = Some("$default".into());
    // The caller, as API Gateway's IAM authorizer names it.
    let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
    iam.user_arn = Some(BENCH_CALLER.into());
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.iam = Some(iam);
    request.request_context.authorizer = Some(authorizer);
    request
}

/// The caller of every benchmark request.
pub const BENCH_CALLER: &str = "arn:aws:iam::000000000000:role/foxrelay-bench";

/// moto, started once.
pub struct Lab {
    pub moto: MotoServer,
}

/// One section's resources.
pub struct Stack {
    pub clients: AwsClients,
    pub template: StackTemplate,
    pub resources: Provisioned,
    pub prefix: String,
}

impl Lab {
    pub fn start() -> Result<Self, String> {
        let moto = MotoServer::start().map_err(|e| e.to_string())?;
        Ok(Self { moto })
    }

    pub async fn clients(&self) -> AwsClients {
        self.clients_at(&self.moto.endpoint_url()).await
    }

    /// Clients for an endpoint in front of moto (the cost section's counting
    /// proxy).
    pub async fn clients_at(&self, endpoint: &str) -> AwsClients {
        AwsClients::new(&load_local(&LocalAws::new(endpoint.to_owned())).await)
    }

    /// The template's resources under a fresh prefix.
    pub async fn stack(&self, clients: AwsClients) -> Result<Stack, String> {
        let template =
            StackTemplate::load(&StackTemplate::repository_path()).map_err(|e| e.to_string())?;
        let prefix = format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let resources = provision(&template, &clients, &prefix)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Stack {
            clients,
            template,
            resources,
            prefix,
        })
    }
}

impl Stack {
    /// The functions' settings on this stack, against FoxReload at
    /// `base_url`, with `overrides` on top.
    pub fn settings(
        &self,
        base_url: &str,
        api_key: &str,
        overrides: &[(&str, &str)],
    ) -> Result<Settings, String> {
        let mut env = self
            .resources
            .function_environment(&self.template)
            .map_err(|e| e.to_string())?;
        env.insert(names::FOXRELOAD_BASE_URL.into(), base_url.into());
        env.insert(names::FOXRELOAD_API_KEY.into(), api_key.into());
        for (name, value) in overrides {
            env.insert((*name).into(), (*value).into());
        }
        Settings::from_lookup(|name| env.get(name).cloned()).map_err(|e| e.to_string())
    }

    /// The context the handlers are built from, as at a container's start.
    pub async fn context(&self, settings: Settings) -> Result<Context, String> {
        Context::build(settings, self.clients.clone())
            .await
            .map_err(|e| e.to_string())
    }
}
