//! AWS sessions: credentials of every method of seed 002 (access key, assume role in the same account,
//! cross-account with external id, default provider chain), the lean HTTPS client (rustls + ring), and the
//! SQS / S3 / STS clients. Assumed-role sessions are temporary: the SDK's identity cache renews them before they
//! expire (a few minutes ahead), so a long-running puller never works with expired credentials.

use crate::config::{AuthMethod, ClientConfig};
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types_alias::Credentials;
use aws_sdk_sqs::config::SharedCredentialsProvider;

mod aws_credential_types_alias {
    pub use aws_sdk_sqs::config::Credentials;
}

/// Why a session could not be built or tested (SetupError ids 100-101 of the seeds).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot verify the credentials in region {region} (sts:GetCallerIdentity): {reason}")]
    Identity { region: String, reason: String },
}

/// A session: the SDK configuration and the account it belongs to.
#[derive(Clone, Debug)]
pub struct Session {
    pub sdk: SdkConfig,
    /// Account id of the session's identity (the `{account_id}` of tags when the event has none).
    pub account_id: String,
    /// ARN of the identity, for the setup log line.
    pub arn: String,
    pub path_style: bool,
}

/// The lean HTTPS client (rustls with ring), shared by every AWS client of logferry.
pub fn https_client() -> aws_smithy_http_client_alias::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

mod aws_smithy_http_client_alias {
    pub use aws_sdk_sqs::config::SharedHttpClient;
}

async fn base_config(cfg: &ClientConfig, creds: Option<SharedCredentialsProvider>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .http_client(https_client());
    if let Some(e) = &cfg.endpoint {
        loader = loader.endpoint_url(e.clone());
    }
    if let Some(p) = &cfg.credentials.profile {
        loader = loader.profile_name(p.clone());
    }
    if let Some(c) = creds {
        loader = loader.credentials_provider(c);
    }
    loader.load().await
}

/// Builds the session for `cfg` and checks it with sts:GetCallerIdentity. Logs the seeds' setup lines.
pub async fn start(cfg: &ClientConfig, session_name: &str) -> Result<Session, SessionError> {
    let c = &cfg.credentials;
    let method = c.method();
    match method {
        AuthMethod::Static | AuthMethod::DefaultChain => {
            log::info!("Session cannot expire. Using user/profile authentication.")
        }
        AuthMethod::AssumeRole => log::info!(
            "Session can expire. Using assume-role authentication (renewed before expiration)."
        ),
        AuthMethod::CrossAccount => log::info!(
            "Session can expire. Using cross-account authentication (renewed before expiration)."
        ),
    }
    log::info!("Creating user session");
    let static_creds = match (&c.access_key, &c.access_secret) {
        (Some(k), Some(s)) => Some(SharedCredentialsProvider::new(Credentials::new(
            k.clone(),
            s.expose().to_owned(),
            c.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "logferry-config",
        ))),
        _ => None,
    };
    let base = base_config(cfg, static_creds).await;
    let sdk = match method {
        AuthMethod::Static | AuthMethod::DefaultChain => base,
        AuthMethod::AssumeRole | AuthMethod::CrossAccount => {
            let role = c.base_assume_role.clone().unwrap_or_default();
            let mut b = AssumeRoleProvider::builder(role)
                .session_name(session_name)
                .session_length(c.session_duration)
                .configure(&base);
            if method == AuthMethod::AssumeRole {
                if let Some(x) = &c.external_id {
                    b = b.external_id(x.expose());
                }
            }
            let first = b.build().await;
            let provider = if method == AuthMethod::CrossAccount {
                let mid = base
                    .clone()
                    .into_builder()
                    .credentials_provider(SharedCredentialsProvider::new(first))
                    .build();
                let mut t =
                    AssumeRoleProvider::builder(c.target_assume_role.clone().unwrap_or_default())
                        .session_name(session_name)
                        .session_length(c.session_duration)
                        .configure(&mid);
                if let Some(x) = &c.external_id {
                    t = t.external_id(x.expose());
                }
                SharedCredentialsProvider::new(t.build().await)
            } else {
                SharedCredentialsProvider::new(first)
            };
            base.into_builder()
                .credentials_provider(SharedCredentialsProvider::new(MaskedInLogs(provider)))
                .build()
        }
    };
    let sts = aws_sdk_sts::Client::new(&sdk);
    let who = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| SessionError::Identity {
            region: cfg.region.clone(),
            reason: crate::errors::err_text(&e),
        })?;
    let session = Session {
        account_id: who.account().unwrap_or("unknown").to_owned(),
        arn: who.arn().unwrap_or("").to_owned(),
        sdk,
        path_style: cfg.endpoint.is_some(),
    };
    log::info!("New AWS session started.");
    log::debug!(
        "Session identity {}, account {}",
        session.arn,
        session.account_id
    );
    Ok(session)
}

impl Session {
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk)
            .force_path_style(self.path_style)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// The access key id the session currently signs with (resolves, and renews when needed).
    pub async fn access_key_id(&self) -> Option<String> {
        use aws_credential_types_provide::ProvideCredentials;
        let p = self.sdk.credentials_provider()?;
        p.provide_credentials()
            .await
            .ok()
            .map(|c| c.access_key_id().to_owned())
    }
}

/// Registers each secret key and session token that assume-role hands out with the log redaction
/// (`logferry::redact`): they are not in the config file, yet a server's error text may echo them.
#[derive(Debug)]
struct MaskedInLogs(SharedCredentialsProvider);

impl aws_credential_types::provider::ProvideCredentials for MaskedInLogs {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let credentials = self.0.provide_credentials().await?;
            logferry::redact::register(credentials.secret_access_key());
            if let Some(token) = credentials.session_token() {
                logferry::redact::register(token);
            }
            Ok(credentials)
        })
    }
}

mod aws_credential_types_provide {
    pub use aws_sdk_sqs::config::ProvideCredentials;
}
