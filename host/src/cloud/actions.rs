//! Which cloud API action a request calls — AWS Query (`Action=`), AWS
//! JSON (`X-Amz-Target`), S3 REST (method, path, query), EFS REST-JSON
//! (method, path: [`efs`]), ARM (method, resource type, action path); the
//! egress's [`ActionList`] says whether it may.

mod efs;

pub use crate::egress::ActionList;
use crate::egress::ApiCall;

/// AWS services that speak the Query protocol (`Action=` in the query or
/// the form body).
const QUERY_SERVICES: &[&str] = &["autoscaling", "ec2", "elasticloadbalancing", "iam", "sts"];

/// AWS services that speak JSON 1.0/1.1 (`X-Amz-Target: Prefix.Action`).
const JSON_SERVICES: &[&str] = &["cloudtrail", "fsx", "kms", "logs", "ssm"];

/// The `X-Amz-Target` prefixes of the JSON services, by service.
const JSON_TARGETS: &[(&str, &str)] = &[
    ("AmazonSSM.", "ssm"),
    ("TrentService.", "kms"),
    ("Logs_20140328.", "logs"),
    ("CloudTrail_20131101.", "cloudtrail"),
    (
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.",
        "cloudtrail",
    ),
    ("AWSSimbaAPIService_v20180301.", "fsx"),
];

/// The service a request to an endpoint serving several (a local
/// emulator behind `AWS_ENDPOINT_URL`) is for, when the request itself
/// says: a JSON protocol request by its `X-Amz-Target` prefix
/// (`AmazonSSM.SendCommand` → `ssm`), an EFS request by its
/// `/2015-02-01/` path. `None`: a Query or S3 request, which does not.
pub fn service_of_request(uri: &http::Uri, headers: &http::HeaderMap) -> Option<&'static str> {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return JSON_TARGETS
            .iter()
            .find(|(prefix, _)| target.starts_with(prefix))
            .map(|(_, service)| *service);
    }
    uri.path()
        .starts_with(efs::PATH_PREFIX)
        .then_some("elasticfilesystem")
}

/// The action of a request to AWS `service` (the signing scope).
pub fn aws_call(
    service: &str,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<ApiCall, String> {
    let call = |action: String, resource: Option<String>| ApiCall {
        service: service.to_string(),
        action: format!("{service}:{action}"),
        resource,
    };
    if service == "s3" {
        let (action, resource) = s3_action(method, uri)?;
        return Ok(call(action, resource));
    }
    if service == "elasticfilesystem" {
        let (action, resource) = efs::efs_action(method, uri)?;
        return Ok(call(action, resource));
    }
    if QUERY_SERVICES.contains(&service) {
        let mut params: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let form = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form {
            params.extend(url::form_urlencoded::parse(body).into_owned());
        }
        let action = params
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.clone())
            .filter(|a| is_action_name(a))
            .ok_or_else(|| format!("a {service} request names no Action"))?;
        return Ok(call(action, query_resource(&params)));
    }
    if JSON_SERVICES.contains(&service) {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("a {service} request has no X-Amz-Target"))?;
        let action = target
            .rsplit_once('.')
            .map(|(_, a)| a.to_string())
            .filter(|a| is_action_name(a))
            .ok_or_else(|| format!("X-Amz-Target `{target}` names no action"))?;
        return Ok(call(action, json_resource(body)));
    }
    Err(format!(
        "irhost cannot tell the action of a {service} request"
    ))
}

fn is_action_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The first parameter naming a resource id (`InstanceId`, `ResourceId.1`,
/// `InstanceSpecification.InstanceId`, `GroupId`, …).
fn query_resource(params: &[(String, String)]) -> Option<String> {
    params
        .iter()
        .find(|(k, v)| {
            let last = k
                .split('.')
                .rev()
                .find(|part| !part.chars().all(|c| c.is_ascii_digit()))
                .unwrap_or("");
            last.ends_with("Id") && !v.is_empty()
        })
        .map(|(_, v)| v.clone())
}

fn json_resource(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    [
        "InstanceId",
        "KeyId",
        "logGroupName",
        "Name",
        "CommandId",
        "FileSystemId",
    ]
    .iter()
    .find_map(|k| value.get(*k)?.as_str().map(str::to_string))
    .or_else(|| {
        ["InstanceIds", "FileSystemIds"]
            .iter()
            .find_map(|k| value.get(*k)?.get(0)?.as_str().map(str::to_string))
    })
}

/// S3 REST: the IAM action a request needs, and `bucket` or `bucket/key`.
fn s3_action(method: &http::Method, uri: &http::Uri) -> Result<(String, Option<String>), String> {
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let path = uri.path().trim_start_matches('/');
    // Virtual-hosted (`bucket.s3.region.amazonaws.com`) or path-style.
    let (bucket, key) = match host.split_once(".s3") {
        Some((bucket, rest))
            if host.ends_with(".amazonaws.com") && rest.starts_with(['.', '-']) =>
        {
            (bucket.to_string(), path.to_string())
        }
        _ => match path.split_once('/') {
            Some((bucket, key)) => (bucket.to_string(), key.to_string()),
            None => (path.to_string(), String::new()),
        },
    };
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let object = !key.is_empty();
    let m = method.as_str();
    let action = if bucket.is_empty() {
        match m {
            "GET" => "ListAllMyBuckets",
            _ => return Err(format!("an S3 {m} on no bucket")),
        }
    } else if object {
        match m {
            _ if has("uploadId") && m == "DELETE" => "AbortMultipartUpload",
            _ if has("uploadId") && m == "GET" => "ListMultipartUploadParts",
            _ if has("retention") => sub(m, "GetObjectRetention", "PutObjectRetention")?,
            _ if has("legal-hold") => sub(m, "GetObjectLegalHold", "PutObjectLegalHold")?,
            _ if has("tagging") => sub(m, "GetObjectTagging", "PutObjectTagging")?,
            _ if has("acl") => sub(m, "GetObjectAcl", "PutObjectAcl")?,
            "GET" | "HEAD" if has("versionId") => "GetObjectVersion",
            "GET" | "HEAD" => "GetObject",
            "PUT" | "POST" => "PutObject",
            "DELETE" if has("versionId") => "DeleteObjectVersion",
            "DELETE" => "DeleteObject",
            _ => {
                return Err(format!(
                    "irhost cannot tell the S3 action of {m} on an object"
                ))
            }
        }
    } else {
        match m {
            _ if has("object-lock") => sub(
                m,
                "GetBucketObjectLockConfiguration",
                "PutBucketObjectLockConfiguration",
            )?,
            _ if has("versioning") => sub(m, "GetBucketVersioning", "PutBucketVersioning")?,
            _ if has("policy") => sub(m, "GetBucketPolicy", "PutBucketPolicy")?,
            _ if has("tagging") => sub(m, "GetBucketTagging", "PutBucketTagging")?,
            _ if has("acl") => sub(m, "GetBucketAcl", "PutBucketAcl")?,
            _ if has("location") => "GetBucketLocation",
            _ if has("versions") => "ListBucketVersions",
            _ if has("uploads") => "ListBucketMultipartUploads",
            _ if has("delete") && m == "POST" => "DeleteObject",
            "GET" | "HEAD" => "ListBucket",
            "PUT" => "CreateBucket",
            "DELETE" => "DeleteBucket",
            _ => {
                return Err(format!(
                    "irhost cannot tell the S3 action of {m} on a bucket"
                ))
            }
        }
    };
    let resource = if object {
        format!("{bucket}/{key}")
    } else {
        bucket
    };
    Ok((
        action.to_string(),
        (!resource.is_empty()).then_some(resource),
    ))
}

/// The read or write action of a subresource.
fn sub(method: &str, read: &'static str, write: &'static str) -> Result<&'static str, String> {
    match method {
        "GET" | "HEAD" => Ok(read),
        "PUT" | "POST" => Ok(write),
        _ => Err(format!(
            "irhost cannot tell the S3 action of {method} on `{read}`"
        )),
    }
}

/// The ARM action of a request: `{Namespace}/{type}[/{child type}…]/read`
/// (GET), `/write` (PUT, PATCH), `/delete` (DELETE), or
/// `…/{action}/action` (POST to a resource's action).
pub fn arm_call(method: &http::Method, uri: &http::Uri) -> Result<ApiCall, String> {
    let path = uri.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    // The resource type: after the last `providers/{Namespace}`, or the
    // built-in subscriptions/resourceGroups.
    let (namespace, typed): (String, Vec<&str>) = match lower.iter().rposition(|s| s == "providers")
    {
        Some(i) if i + 1 < segments.len() => {
            (segments[i + 1].to_string(), segments[i + 2..].to_vec())
        }
        Some(_) => return Err(format!("ARM path `{path}` names no provider namespace")),
        None => ("Microsoft.Resources".to_string(), segments.clone()),
    };
    // typed alternates type, name, type, name…; an odd trailing segment on
    // POST is an action, on GET a collection.
    let mut types: Vec<&str> = typed.iter().step_by(2).copied().collect();
    let odd = typed.len() % 2 == 1;
    let m = method.as_str();
    let verb = match m {
        "GET" | "HEAD" => "read".to_string(),
        "PUT" | "PATCH" => "write".to_string(),
        "DELETE" => "delete".to_string(),
        "POST" if odd && types.len() > 1 => {
            let action = types.pop().unwrap_or_default();
            format!("{action}/action")
        }
        "POST" => "action".to_string(),
        _ => return Err(format!("irhost cannot tell the ARM action of {m} {path}")),
    };
    if types.is_empty() {
        return Err(format!("ARM path `{path}` names no resource type"));
    }
    let action = format!("{namespace}/{}/{verb}", types.join("/"));
    let resource_len = if odd && m == "POST" {
        segments.len() - 1
    } else {
        segments.len()
    };
    Ok(ApiCall {
        service: "arm".into(),
        action,
        resource: Some(format!("/{}", segments[..resource_len].join("/"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(service: &str, method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> String {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let call = aws_call(
            service,
            &method.parse().unwrap(),
            &url.parse().unwrap(),
            &map,
            body.as_bytes(),
        )
        .unwrap();
        format!("{} {}", call.action, call.resource.unwrap_or_default())
    }

    const FORM: (&str, &str) = (
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    );

    #[test]
    fn query_actions_come_from_the_form_body_or_the_query() {
        assert_eq!(
            aws(
                "ec2",
                "POST",
                "https://ec2.us-east-1.amazonaws.com/",
                &[FORM],
                "Action=CreateSnapshots&Version=2016-11-15&InstanceSpecification.InstanceId=i-0abc"
            ),
            "ec2:CreateSnapshots i-0abc"
        );
        assert_eq!(
            aws(
                "sts",
                "GET",
                "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
                &[],
                ""
            ),
            "sts:GetCallerIdentity "
        );
        assert_eq!(
            aws(
                "ec2",
                "POST",
                "http://127.0.0.1:5000/",
                &[FORM],
                "Action=CreateTags&ResourceId.1=snap-1&Tag.1.Key=case"
            ),
            "ec2:CreateTags snap-1"
        );
        // A form body is read only as a form.
        let err = aws_call(
            "ec2",
            &http::Method::POST,
            &"https://ec2.amazonaws.com/".parse().unwrap(),
            &http::HeaderMap::new(),
            b"Action=TerminateInstances",
        )
        .unwrap_err();
        assert!(err.contains("names no Action"), "{err}");
    }

    #[test]
    fn json_actions_come_from_the_target_header() {
        assert_eq!(
            aws(
                "ssm",
                "POST",
                "https://ssm.us-east-1.amazonaws.com/",
                &[("x-amz-target", "AmazonSSM.SendCommand")],
                r#"{"InstanceIds":["i-1"],"DocumentName":"AWS-RunShellScript"}"#
            ),
            "ssm:SendCommand i-1"
        );
        assert_eq!(
            aws(
                "kms",
                "POST",
                "https://kms.us-east-1.amazonaws.com/",
                &[("x-amz-target", "TrentService.CreateGrant")],
                r#"{"KeyId":"k-1"}"#
            ),
            "kms:CreateGrant k-1"
        );
        assert_eq!(
            aws(
                "fsx",
                "POST",
                "https://fsx.us-east-1.amazonaws.com/",
                &[(
                    "x-amz-target",
                    "AWSSimbaAPIService_v20180301.DescribeFileSystems"
                )],
                r#"{"FileSystemIds":["fs-0123456789abcdef0"]}"#
            ),
            "fsx:DescribeFileSystems fs-0123456789abcdef0"
        );
    }

    #[test]
    fn efs_actions_are_named_with_their_iam_prefix() {
        assert_eq!(
            aws(
                "elasticfilesystem",
                "GET",
                "http://127.0.0.1:5000/2015-02-01/mount-targets?FileSystemId=fs-1",
                &[],
                ""
            ),
            "elasticfilesystem:DescribeMountTargets fs-1"
        );
        assert_eq!(
            aws(
                "elasticfilesystem",
                "GET",
                "https://elasticfilesystem.eu-west-1.amazonaws.com/2015-02-01/file-systems",
                &[],
                ""
            ),
            "elasticfilesystem:DescribeFileSystems "
        );
    }

    #[test]
    fn a_shared_endpoint_request_names_its_service_when_it_can() {
        let with_target = |target: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-amz-target", target.parse().unwrap());
            service_of_request(&"http://127.0.0.1:5000/".parse().unwrap(), &headers)
        };
        assert_eq!(with_target("AmazonSSM.SendCommand"), Some("ssm"));
        assert_eq!(
            with_target("AWSSimbaAPIService_v20180301.DescribeFileSystems"),
            Some("fsx")
        );
        assert_eq!(with_target("DynamoDB_20120810.GetItem"), None);
        let bare = |url: &str| service_of_request(&url.parse().unwrap(), &http::HeaderMap::new());
        assert_eq!(
            bare("http://127.0.0.1:5000/2015-02-01/file-systems"),
            Some("elasticfilesystem")
        );
        assert_eq!(
            bare("http://127.0.0.1:5000/?Action=DescribeInstances"),
            None
        );
        assert_eq!(bare("http://127.0.0.1:5000/bucket/key"), None);
    }

    #[test]
    fn s3_actions_come_from_method_path_and_query() {
        let s3 = |m: &str, url: &str| aws("s3", m, url, &[], "");
        assert_eq!(
            s3("PUT", "http://127.0.0.1:5000/vault/case/a.json"),
            "s3:PutObject vault/case/a.json"
        );
        assert_eq!(
            s3("HEAD", "https://s3.us-east-1.amazonaws.com/vault/k"),
            "s3:GetObject vault/k"
        );
        assert_eq!(
            s3(
                "PUT",
                "https://vault.s3.us-east-1.amazonaws.com/k?retention"
            ),
            "s3:PutObjectRetention vault/k"
        );
        assert_eq!(
            s3("GET", "http://127.0.0.1:5000/vault?object-lock"),
            "s3:GetBucketObjectLockConfiguration vault"
        );
        assert_eq!(
            s3("GET", "http://127.0.0.1:5000/vault?list-type=2"),
            "s3:ListBucket vault"
        );
        assert_eq!(
            s3("DELETE", "http://127.0.0.1:5000/vault/k"),
            "s3:DeleteObject vault/k"
        );
        assert_eq!(
            s3("POST", "http://127.0.0.1:5000/vault?delete"),
            "s3:DeleteObject vault"
        );
        assert_eq!(
            s3("PUT", "http://127.0.0.1:5000/other"),
            "s3:CreateBucket other"
        );
    }

    #[test]
    fn arm_actions_come_from_method_and_resource_type() {
        let arm = |m: &str, path: &str| {
            let call = arm_call(
                &m.parse().unwrap(),
                &format!("https://management.azure.com{path}?api-version=2024-03-01")
                    .parse()
                    .unwrap(),
            )
            .unwrap();
            format!("{} {}", call.action, call.resource.unwrap())
        };
        let vm =
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1";
        assert_eq!(
            arm("GET", vm),
            format!("Microsoft.Compute/virtualMachines/read {vm}")
        );
        assert_eq!(
            arm("POST", &format!("{vm}/powerOff")),
            format!("Microsoft.Compute/virtualMachines/powerOff/action {vm}")
        );
        assert_eq!(
            arm("PUT", "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/n/securityRules/r"),
            "Microsoft.Network/networkSecurityGroups/securityRules/write /subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/n/securityRules/r"
        );
        assert_eq!(arm("GET", "/subscriptions/s/resourceGroups/g"), "Microsoft.Resources/subscriptions/resourceGroups/read /subscriptions/s/resourceGroups/g");
        assert_eq!(
            arm("GET", "/subscriptions/s/providers/Microsoft.Compute/locations/westus/operations/op1"),
            "Microsoft.Compute/locations/operations/read /subscriptions/s/providers/Microsoft.Compute/locations/westus/operations/op1"
        );
        assert_eq!(
            arm("GET", "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks"),
            "Microsoft.Compute/disks/read /subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks"
        );
    }
}
