//! Profiles with `mfa_serial`, which aws-config does not do: when the
//! selected profile has `role_arn` and `mfa_serial`, irhost assumes the
//! role itself (STS `AssumeRole` with the serial and the code the
//! responder types at the terminal), from the `source_profile`'s
//! credentials. Without a terminal it refuses, saying what to do instead.

use std::io::{BufRead, Write};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use super::credentials::one_line;
use super::http_client::HostHttpClient;

/// The selected profile's MFA role.
#[derive(Debug, Clone)]
pub struct MfaProfile {
    pub profile: String,
    pub role_arn: String,
    pub serial: String,
    pub source_profile: Option<String>,
    pub external_id: Option<String>,
    pub duration: Option<Duration>,
}

/// The selected profile (`AWS_PROFILE`, else `default`), when it is an
/// MFA role.
pub async fn selected_mfa_profile() -> Option<MfaProfile> {
    let set = aws_config::profile::load(
        &aws_types::os_shim_internal::Fs::real(),
        &aws_types::os_shim_internal::Env::real(),
        &Default::default(),
        None,
    )
    .await
    .ok()?;
    let name = set.selected_profile().to_string();
    let profile = set.get_profile(&name)?;
    Some(MfaProfile {
        role_arn: profile.get("role_arn")?.to_string(),
        serial: profile.get("mfa_serial")?.to_string(),
        source_profile: profile.get("source_profile").map(str::to_string),
        external_id: profile.get("external_id").map(str::to_string),
        duration: profile
            .get("duration_seconds")
            .and_then(|d| d.parse().ok())
            .map(Duration::from_secs),
        profile: name,
    })
}

/// Credentials of an MFA profile's role.
#[derive(Debug)]
pub struct MfaProvider {
    profile: MfaProfile,
    config: SdkConfig,
}

impl MfaProvider {
    pub fn new(profile: MfaProfile, config: SdkConfig) -> Self {
        MfaProvider { profile, config }
    }

    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let p = &self.profile;
        let Some(source) = &p.source_profile else {
            return Err(CredentialsError::invalid_configuration(format!(
                "profile `{}` has mfa_serial but no source_profile: irhost assumes MFA roles from a source profile's keys",
                p.profile
            )));
        };
        let provider_config =
            aws_config::provider_config::ProviderConfig::default().with_http_client(HostHttpClient);
        let source = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .profile_name(source)
            .configure(&provider_config)
            .build();
        let code = read_code(p).await?;
        let sts_config = aws_sdk_sts::config::Builder::from(&self.config)
            .credentials_provider(SharedCredentialsProvider::new(source))
            .build();
        let client = aws_sdk_sts::Client::from_conf(sts_config);
        let session = format!(
            "irhost-{}",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default()
        );
        let mut call = client
            .assume_role()
            .role_arn(&p.role_arn)
            .role_session_name(session)
            .serial_number(&p.serial)
            .token_code(code);
        if let Some(id) = &p.external_id {
            call = call.external_id(id);
        }
        if let Some(d) = p.duration {
            call = call.duration_seconds(d.as_secs() as i32);
        }
        let answer = call.send().await.map_err(|e| {
            CredentialsError::provider_error(format!(
                "AssumeRole of {} with the MFA code failed: {}",
                p.role_arn,
                one_line(&e)
            ))
        })?;
        let c = answer.credentials.ok_or_else(|| {
            CredentialsError::unhandled("AssumeRole answered without credentials")
        })?;
        let expiry = SystemTime::try_from(c.expiration).ok();
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            expiry,
            "irhost-mfa",
        ))
    }
}

impl ProvideCredentials for MfaProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

/// The code, typed at the controlling terminal; none: refused.
async fn read_code(p: &MfaProfile) -> Result<String, CredentialsError> {
    let (profile, serial) = (p.profile.clone(), p.serial.clone());
    let refused = move |why: String| {
        CredentialsError::not_loaded(format!(
            "profile `{profile}` needs an MFA code (mfa_serial = {serial}) and {why}: run irhost on a terminal, or export temporary credentials first (`aws sts get-session-token`, `aws configure export-credentials --profile {profile}`)"
        ))
    };
    let prompt = format!("MFA code for {} (profile {}): ", p.serial, p.profile);
    tokio::task::spawn_blocking(move || {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(|_| refused("irhost is not on a terminal".into()))?;
        let mut writer = tty.try_clone().map_err(|e| refused(e.to_string()))?;
        writer
            .write_all(prompt.as_bytes())
            .and_then(|_| writer.flush())
            .map_err(|e| refused(e.to_string()))?;
        let mut line = String::new();
        std::io::BufReader::new(tty)
            .read_line(&mut line)
            .map_err(|e| refused(e.to_string()))?;
        let code = line.trim().to_string();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refused(format!("`{code}` is not a six-digit code")));
        }
        Ok(code)
    })
    .await
    .map_err(|e| CredentialsError::unhandled(e.to_string()))?
}
