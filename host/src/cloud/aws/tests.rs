//! Unit tests of the SigV4 signer: published vectors, scopes, grants.

use std::time::Duration;

use aws_credential_types::Credentials;

use super::*;

fn vector_signer() -> AwsSigner {
    // The credentials and time of the published AWS SigV4 test suite.
    let credentials = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "test-suite",
    );
    AwsSigner::new(
        Arc::new(AwsIdentities::fixed(credentials)),
        &["service"],
        "us-east-1",
    )
    .at_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)) // 20150830T123600Z
}

async fn sign(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Request<Bytes> {
    // The suite signs for service "service"; the hint header says so
    // (and is not signed: the signer removes it).
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("x-irhost-aws-service", "service");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut request = builder.body(Bytes::from(body.to_string())).unwrap();
    vector_signer()
        .sign(&mut request, &CallScope::default())
        .await
        .unwrap();
    request
}

fn authorization(request: &http::Request<Bytes>) -> &str {
    request.headers()["authorization"].to_str().unwrap()
}

// aws-sig-v4-test-suite/get-vanilla
#[tokio::test]
async fn published_vector_get_vanilla() {
    let r = sign(
        "GET",
        "https://example.amazonaws.com/",
        &[("host", "example.amazonaws.com")],
        "",
    )
    .await;
    assert_eq!(r.headers()["x-amz-date"], "20150830T123600Z");
    assert_eq!(
        authorization(&r),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

// aws-sig-v4-test-suite/get-vanilla-query-order-key-case
#[tokio::test]
async fn published_vector_get_vanilla_query_order_key_case() {
    let r = sign(
        "GET",
        "https://example.amazonaws.com/?Param2=value2&Param1=value1",
        &[("host", "example.amazonaws.com")],
        "",
    )
    .await;
    assert!(
        authorization(&r).ends_with(
            "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        ),
        "{}",
        authorization(&r)
    );
}

// aws-sig-v4-test-suite/post-x-www-form-urlencoded
#[tokio::test]
async fn published_vector_post_form_body() {
    let r = sign(
        "POST",
        "https://example.amazonaws.com/",
        &[
            ("host", "example.amazonaws.com"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        "Param1=value1",
    )
    .await;
    assert!(
        authorization(&r).ends_with(
            "SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        ),
        "{}",
        authorization(&r)
    );
}

#[tokio::test]
async fn a_plugin_cannot_supply_its_own_authorization() {
    let r = sign(
        "GET",
        "https://example.amazonaws.com/",
        &[
            ("host", "example.amazonaws.com"),
            ("authorization", "forged"),
            ("x-amz-date", "19700101T000000Z"),
        ],
        "",
    )
    .await;
    assert!(authorization(&r).starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
    assert_eq!(r.headers().get_all("authorization").iter().count(), 1);
    assert_eq!(r.headers()["x-amz-date"], "20150830T123600Z");
}

#[test]
fn scope_comes_from_the_host() {
    let s = |h: &str| scope_from_host(h).map(|(a, b)| format!("{a}/{b}"));
    assert_eq!(
        s("ec2.eu-west-1.amazonaws.com").as_deref(),
        Some("ec2/eu-west-1")
    );
    assert_eq!(s("iam.amazonaws.com").as_deref(), Some("iam/us-east-1"));
    assert_eq!(
        s("bucket.s3.us-west-2.amazonaws.com").as_deref(),
        Some("s3/us-west-2")
    );
    assert_eq!(s("127.0.0.1"), None);
    assert_eq!(
        s("ec2-fips.us-east-1.amazonaws.com").as_deref(),
        Some("ec2/us-east-1")
    );
    assert_eq!(
        s("s3.dualstack.eu-west-1.amazonaws.com").as_deref(),
        Some("s3/eu-west-1")
    );
    assert_eq!(
        s("vpce-0abc-1def.ec2.us-east-1.vpce.amazonaws.com").as_deref(),
        Some("ec2/us-east-1")
    );
    assert_eq!(s("ec2.us-east-1.amazonaws.com.evil.example"), None);
}

#[test]
fn only_granted_services_and_the_environment_endpoint_are_signed() {
    let signer = AwsSigner::new(
        Arc::new(AwsIdentities::fixed(Credentials::new(
            "AKID", "secret", None, None, "test",
        ))),
        &["ec2"],
        "us-east-1",
    )
    .trusting(&[
        "http://127.0.0.1:5000".to_string(),
        "http://example.com".to_string(),
    ]);
    let scoped = |uri: &str| signer.in_scope(&uri.parse().unwrap());
    for signed in [
        "https://ec2.us-east-1.amazonaws.com/",
        "https://ec2.amazonaws.com/?Action=DescribeInstances",
        "https://ec2-fips.us-gov-west-1.amazonaws.com/",
        "https://vpce-0abc.ec2.eu-west-1.vpce.amazonaws.com/",
        "http://127.0.0.1:5000/",
    ] {
        assert!(scoped(signed), "{signed} must be signed");
    }
    for unsigned in [
        "https://sts.amazonaws.com/",
        "https://s3.us-east-1.amazonaws.com/",
        "http://ec2.us-east-1.amazonaws.com/",
        "https://ec2.us-east-1.amazonaws.com:8443/",
        "https://attacker.example/",
        "http://127.0.0.1:5001/",
        // Plain http beyond loopback is never trusted, even from the environment.
        "http://example.com/",
    ] {
        assert!(!scoped(unsigned), "{unsigned} must leave unsigned");
    }
}

#[test]
fn endpoint_overrides_follow_the_aws_convention() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        AwsEnvironment::from_vars(move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    };
    let env = vars(&[
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ("AWS_REGION", "eu-west-1"),
    ]);
    assert_eq!(env.endpoint_for("ec2"), Some("http://127.0.0.1:5000"));
    assert_eq!(env.endpoint_for("s3"), Some("http://127.0.0.1:5000"));
    assert_eq!(env.region.as_deref(), Some("eu-west-1"));
    let env = vars(&[
        ("AWS_ENDPOINT_URL", "http://a:1"),
        ("AWS_ENDPOINT_URL_EC2", "http://b:2"),
    ]);
    assert_eq!(env.endpoint_for("ec2"), Some("http://b:2"));
    assert_eq!(env.endpoint_for("s3"), Some("http://a:1"));
    assert_eq!(vars(&[]), AwsEnvironment::default());
    // EFS's variable is named by its SDK id, not its signing name.
    let env = vars(&[
        ("AWS_ENDPOINT_URL", "http://a:1"),
        ("AWS_ENDPOINT_URL_EFS", "http://e:3"),
        ("AWS_ENDPOINT_URL_FSX", "http://f:4"),
    ]);
    assert_eq!(env.endpoint_for("elasticfilesystem"), Some("http://e:3"));
    assert_eq!(env.endpoint_for("fsx"), Some("http://f:4"));
}

#[test]
fn a_local_emulator_s_requests_are_signed_for_the_service_they_name() {
    let signer = AwsSigner::new(
        Arc::new(AwsIdentities::fixed(Credentials::new(
            "AKID", "secret", None, None, "test",
        ))),
        &["ec2", "ssm", "elasticfilesystem", "fsx"],
        "us-east-1",
    )
    .trusting(&["http://127.0.0.1:5000".to_string()])
    .allowing(ActionList::new(vec![
        "ec2:DescribeInstances".into(),
        "elasticfilesystem:DescribeMountTargets".into(),
        "fsx:DescribeFileSystems".into(),
    ]));
    let request = |method: &str, uri: &str, target: Option<&str>, body: &str| {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(target) = target {
            builder = builder
                .header("x-amz-target", target)
                .header("content-type", "application/x-amz-json-1.1");
        } else if method == "POST" {
            builder = builder.header("content-type", "application/x-www-form-urlencoded");
        }
        builder.body(Bytes::from(body.to_string())).unwrap()
    };
    let efs = request(
        "GET",
        "http://127.0.0.1:5000/2015-02-01/mount-targets?FileSystemId=fs-1",
        None,
        "",
    );
    assert_eq!(
        signer.scope(&efs),
        ("elasticfilesystem".to_string(), "us-east-1".to_string())
    );
    assert_eq!(
        signer.check(&efs).unwrap().action,
        "elasticfilesystem:DescribeMountTargets"
    );
    let fsx = request(
        "POST",
        "http://127.0.0.1:5000/",
        Some("AWSSimbaAPIService_v20180301.DescribeFileSystems"),
        "{}",
    );
    assert_eq!(signer.scope(&fsx).0, "fsx");
    assert_eq!(
        signer.check(&fsx).unwrap().action,
        "fsx:DescribeFileSystems"
    );
    let ec2 = request(
        "POST",
        "http://127.0.0.1:5000/",
        None,
        "Action=DescribeInstances&Version=2016-11-15",
    );
    assert_eq!(signer.scope(&ec2).0, "ec2");
    // A granted service, but not the granted action.
    let efs_write = request(
        "POST",
        "http://127.0.0.1:5000/2015-02-01/mount-targets",
        None,
        "{}",
    );
    let err = signer.check(&efs_write).unwrap_err();
    assert!(
        err.contains("elasticfilesystem:CreateMountTarget is not in the plugin's grant"),
        "{err}"
    );
    // A service not granted is not signed for, whatever the request says.
    let ec2_only = AwsSigner::new(
        Arc::new(AwsIdentities::fixed(Credentials::new(
            "AKID", "secret", None, None, "test",
        ))),
        &["ec2"],
        "us-east-1",
    );
    assert_eq!(ec2_only.scope(&efs).0, "ec2");
}
