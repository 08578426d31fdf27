//! `irhost doctor`'s checks of the responder's cloud access, before an
//! incident: for a target and a plugin's grant, which identity would sign
//! (the base chain, or the grant's role in the target's account), whether
//! it works (STS `GetCallerIdentity`; an ARM token), and for each action
//! the grant lists whether that identity may call it — EC2 with `DryRun`
//! where the API has it and irhost knows a harmless call, IAM policy
//! simulation otherwise. Nothing is changed: every EC2 call is a dry run,
//! and the rest only read.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::aws::xml::{api_error, first_text};
use super::aws::AwsSigner;
use super::grant::{AssumeRole, CloudGrant};
use super::{ActionList, CloudEnv};
use crate::egress::{CallScope, EgressClient};
use crate::target::TargetSpec;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    /// Something the playbook needs is missing: `doctor` exits 1.
    Missing,
    /// It could not be told (a wildcard, an API error): said, not failed.
    Unknown,
}

/// One line of the doctor's table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub target: String,
    pub plugin: String,
    /// Who signs: `base identity`, `role arn:…`.
    pub signer: String,
    /// `credentials`, or the action checked.
    pub check: String,
    pub verdict: Verdict,
    pub detail: String,
}

/// One request's outcome: status and body.
type Answer = (u16, String);

impl CloudEnv {
    /// The checks of `grant` (plugin `plugin`) for `target`.
    pub async fn doctor(
        &self,
        plugin: &str,
        grant: &CloudGrant,
        target: &TargetSpec,
    ) -> Vec<Check> {
        let line = |signer: &str, check: &str, verdict, detail: String| Check {
            target: target.label(),
            plugin: plugin.to_string(),
            signer: signer.to_string(),
            check: check.to_string(),
            verdict,
            detail,
        };
        match grant {
            CloudGrant::Aws { actions, role, .. } => {
                self.aws_doctor(actions, role.as_ref(), target, &line).await
            }
            CloudGrant::Azure { .. } => {
                let tokens = super::azure::TokenSource::new(self.azure.clone());
                vec![match tokens.token().await {
                    Ok((_, source)) => line(
                        &source,
                        "credentials (ARM token)",
                        Verdict::Ok,
                        format!("a token for {}", self.azure.cloud.audience),
                    ),
                    Err(e) => line("-", "credentials (ARM token)", Verdict::Missing, e),
                }]
            }
        }
    }

    async fn aws_doctor(
        &self,
        actions: &ActionList,
        role: Option<&AssumeRole>,
        target: &TargetSpec,
        line: &dyn Fn(&str, &str, Verdict, String) -> Check,
    ) -> Vec<Check> {
        let aws = self.aws().await;
        let region = target
            .region
            .clone()
            .or_else(|| aws.region.clone())
            .unwrap_or_else(|| "us-east-1".into());
        let signer = AwsSigner::new(self.aws_identities.clone(), &["sts", "ec2", "iam"], &region)
            .assuming(role.cloned());
        let scope = CallScope {
            case_id: "doctor".into(),
            account: target.account.clone(),
            target: target.id.clone(),
            declared: None,
        };
        let who = match signer.session(&scope) {
            Ok(Some(session)) => format!("role {}", session.arn),
            Ok(None) => "base identity".to_string(),
            Err(e) => return vec![line("-", "credentials", Verdict::Missing, e)],
        };
        let endpoint = |service: &str, default: String| {
            aws.endpoint_for(service)
                .map(str::to_string)
                .unwrap_or(default)
        };
        let sts = endpoint("sts", format!("https://sts.{region}.amazonaws.com"));
        let caller = match query(
            &signer,
            &scope,
            "sts",
            &region,
            &sts,
            "Action=GetCallerIdentity&Version=2011-06-15",
        )
        .await
        {
            Ok((200, body)) => first_text(&body, "Arn").unwrap_or_default(),
            Ok((status, body)) => {
                return vec![line(
                    &who,
                    "credentials (sts:GetCallerIdentity)",
                    Verdict::Missing,
                    api_error(status, &body),
                )]
            }
            Err(e) => {
                return vec![line(
                    &who,
                    "credentials (sts:GetCallerIdentity)",
                    Verdict::Missing,
                    e,
                )]
            }
        };
        let mut checks = vec![line(
            &who,
            "credentials (sts:GetCallerIdentity)",
            Verdict::Ok,
            caller.clone(),
        )];
        let ec2 = endpoint("ec2", format!("https://ec2.{region}.amazonaws.com"));
        let iam = endpoint("iam", "https://iam.amazonaws.com".into());
        let principal = principal_arn(&caller);
        for action in actions.entries() {
            let (verdict, detail) = if action.contains(['*', '?']) {
                (
                    Verdict::Unknown,
                    "a wildcard: list the actions to check them".to_string(),
                )
            } else if let Some(params) = ec2_dry_run(action, &target.id) {
                dry_run(&signer, &scope, &region, &ec2, &params).await
            } else {
                simulate(&signer, &scope, &iam, &principal, action).await
            };
            checks.push(line(&who, action, verdict, detail));
        }
        checks
    }
}

/// A signed AWS Query request (form body) from the host.
async fn query(
    signer: &AwsSigner,
    scope: &CallScope,
    service: &str,
    region: &str,
    url: &str,
    form: &str,
) -> Result<Answer, String> {
    let mut request = http::Request::post(url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .header("x-irhost-aws-service", service)
        .header("x-irhost-aws-region", region)
        .body(Bytes::from(form.to_string()))
        .map_err(|e| format!("{url}: {e}"))?;
    signer.sign(&mut request, scope).await?;
    let response = EgressClient::host()?
        .send(request.map(Full::new), None)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The parameters of a harmless dry run of an EC2 action on `instance`,
/// for the actions irhost's plugins call that take `DryRun` and need no
/// other resource.
fn ec2_dry_run(action: &str, instance: &str) -> Option<String> {
    let name = action.strip_prefix("ec2:")?;
    let id = url::form_urlencoded::byte_serialize(instance.as_bytes()).collect::<String>();
    let params = match name {
        "DescribeInstances" => format!("InstanceId.1={id}"),
        "GetConsoleOutput" => format!("InstanceId={id}"),
        "DescribeInstanceAttribute" => format!("InstanceId={id}&Attribute=disableApiTermination"),
        "DescribeInstanceTypes" | "DescribeNetworkInterfaces" | "DescribeSecurityGroups" => {
            String::new()
        }
        "DescribeSnapshots" => "Owner.1=self".into(),
        "CreateSnapshots" => format!("InstanceSpecification.InstanceId={id}"),
        "CreateTags" | "DeleteTags" => {
            format!("ResourceId.1={id}&Tag.1.Key=irhost%3Adoctor&Tag.1.Value=dry-run")
        }
        "ModifyInstanceAttribute" => format!("InstanceId={id}&DisableApiTermination.Value=true"),
        _ => return None,
    };
    Some(format!(
        "Action={name}&Version=2016-11-15&DryRun=true&{params}"
    ))
}

async fn dry_run(
    signer: &AwsSigner,
    scope: &CallScope,
    region: &str,
    url: &str,
    form: &str,
) -> (Verdict, String) {
    match query(signer, scope, "ec2", region, url, form).await {
        Err(e) => (Verdict::Unknown, e),
        Ok((status, body)) => match first_text(&body, "Code").as_deref() {
            Some("DryRunOperation") => (Verdict::Ok, "permitted (EC2 dry run)".into()),
            Some("UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException") => (
                Verdict::Missing,
                format!("denied (EC2 dry run): {}", api_error(status, &body)),
            ),
            _ => (
                Verdict::Unknown,
                format!("the dry run answered {}", api_error(status, &body)),
            ),
        },
    }
}

/// IAM's policy simulation of `action` for `principal`.
async fn simulate(
    signer: &AwsSigner,
    scope: &CallScope,
    url: &str,
    principal: &str,
    action: &str,
) -> (Verdict, String) {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let form = format!(
        "Action=SimulatePrincipalPolicy&Version=2010-05-08&PolicySourceArn={}&ActionNames.member.1={}",
        enc(principal),
        enc(action)
    );
    match query(signer, scope, "iam", "us-east-1", url, &form).await {
        Err(e) => (Verdict::Unknown, e),
        Ok((200, body)) => match first_text(&body, "EvalDecision").as_deref() {
            Some("allowed") => (Verdict::Ok, "allowed (IAM policy simulation)".into()),
            Some(decision) => (
                Verdict::Missing,
                format!("{decision} (IAM policy simulation)"),
            ),
            None => (Verdict::Unknown, "the simulation gave no decision".into()),
        },
        Ok((status, body)) => (
            Verdict::Unknown,
            format!(
                "the IAM policy simulation answered {}",
                api_error(status, &body)
            ),
        ),
    }
}

/// The IAM principal of a caller ARN: an assumed role's session is
/// simulated as its role.
fn principal_arn(caller: &str) -> String {
    let parts: Vec<&str> = caller.splitn(6, ':').collect();
    if let ["arn", partition, "sts", "", account, resource] = parts[..] {
        if let Some(rest) = resource.strip_prefix("assumed-role/") {
            let role = rest.split('/').next().unwrap_or_default();
            return format!("arn:{partition}:iam::{account}:role/{role}");
        }
    }
    caller.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_role_sessions_are_simulated_as_their_role() {
        assert_eq!(
            principal_arn("arn:aws:sts::111111111111:assumed-role/IRResponder/irhost-doctor"),
            "arn:aws:iam::111111111111:role/IRResponder"
        );
        assert_eq!(
            principal_arn("arn:aws:iam::123456789012:user/ir"),
            "arn:aws:iam::123456789012:user/ir"
        );
    }

    #[test]
    fn errors_read_from_the_xml() {
        let body = "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized</Message></Error></Errors></Response>";
        assert_eq!(
            api_error(403, body),
            "403 UnauthorizedOperation: You are not authorized"
        );
        assert_eq!(first_text("<a><b>x</b></a>", "c"), None);
    }

    #[test]
    fn dry_runs_only_for_known_harmless_calls() {
        let form = ec2_dry_run("ec2:CreateSnapshots", "i-0abc").unwrap();
        assert!(
            form.contains("DryRun=true")
                && form.contains("InstanceSpecification.InstanceId=i-0abc")
        );
        assert!(ec2_dry_run("ec2:ModifySnapshotAttribute", "i-1").is_none());
        assert!(ec2_dry_run("s3:PutObject", "i-1").is_none());
    }
}
