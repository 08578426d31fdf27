//! EFS (REST-JSON, API version `2015-02-01`): the IAM action of a request
//! (prefix `elasticfilesystem`) from its method and path, and the file
//! system, mount target or access point it acts on.

/// The path prefix of every EFS request.
pub const PATH_PREFIX: &str = "/2015-02-01/";

/// The IAM action (without its `elasticfilesystem:` prefix) a request
/// needs, and the resource id it names (in the path, else in the query's
/// `FileSystemId`, `MountTargetId` or `AccessPointId`).
pub fn efs_action(
    method: &http::Method,
    uri: &http::Uri,
) -> Result<(String, Option<String>), String> {
    let path = uri.path();
    let rest = path
        .strip_prefix(PATH_PREFIX)
        .ok_or_else(|| format!("`{path}` is not an EFS {PATH_PREFIX} path"))?;
    let segments: Vec<&str> = rest
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let m = method.as_str();
    let pick = |options: &[(&str, &'static str)]| -> Result<&'static str, String> {
        options
            .iter()
            .find(|(verb, _)| *verb == m || (m == "HEAD" && *verb == "GET"))
            .map(|(_, action)| *action)
            .ok_or_else(|| format!("irhost cannot tell the EFS action of {m} {path}"))
    };
    let action = match segments.as_slice() {
        ["file-systems"] => pick(&[("GET", "DescribeFileSystems"), ("POST", "CreateFileSystem")])?,
        ["file-systems", "replication-configurations"] => {
            pick(&[("GET", "DescribeReplicationConfigurations")])?
        }
        ["file-systems", _] => {
            pick(&[("PUT", "UpdateFileSystem"), ("DELETE", "DeleteFileSystem")])?
        }
        ["file-systems", _, "backup-policy"] => {
            pick(&[("GET", "DescribeBackupPolicy"), ("PUT", "PutBackupPolicy")])?
        }
        ["file-systems", _, "policy"] => pick(&[
            ("GET", "DescribeFileSystemPolicy"),
            ("PUT", "PutFileSystemPolicy"),
            ("DELETE", "DeleteFileSystemPolicy"),
        ])?,
        ["file-systems", _, "lifecycle-configuration"] => pick(&[
            ("GET", "DescribeLifecycleConfiguration"),
            ("PUT", "PutLifecycleConfiguration"),
        ])?,
        ["file-systems", _, "protection"] => pick(&[("PUT", "UpdateFileSystemProtection")])?,
        ["file-systems", _, "replication-configuration"] => pick(&[
            ("POST", "CreateReplicationConfiguration"),
            ("DELETE", "DeleteReplicationConfiguration"),
        ])?,
        ["mount-targets"] => pick(&[
            ("GET", "DescribeMountTargets"),
            ("POST", "CreateMountTarget"),
        ])?,
        ["mount-targets", _] => pick(&[("DELETE", "DeleteMountTarget")])?,
        ["mount-targets", _, "security-groups"] => pick(&[
            ("GET", "DescribeMountTargetSecurityGroups"),
            ("PUT", "ModifyMountTargetSecurityGroups"),
        ])?,
        ["access-points"] => pick(&[
            ("GET", "DescribeAccessPoints"),
            ("POST", "CreateAccessPoint"),
        ])?,
        ["access-points", _] => pick(&[("DELETE", "DeleteAccessPoint")])?,
        ["resource-tags", _] => pick(&[
            ("GET", "ListTagsForResource"),
            ("POST", "TagResource"),
            ("DELETE", "UntagResource"),
        ])?,
        ["account-preferences"] => pick(&[
            ("GET", "DescribeAccountPreferences"),
            ("PUT", "PutAccountPreferences"),
        ])?,
        ["create-tags", _] => pick(&[("POST", "CreateTags")])?,
        ["delete-tags", _] => pick(&[("POST", "DeleteTags")])?,
        ["tags", _] => pick(&[("GET", "DescribeTags")])?,
        _ => return Err(format!("irhost cannot tell the EFS action of {m} {path}")),
    };
    let in_path = match segments.as_slice() {
        [_, id, ..] if *id != "replication-configurations" => Some(id.to_string()),
        _ => None,
    };
    let resource = in_path.or_else(|| {
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .find(|(k, v)| {
                ["FileSystemId", "MountTargetId", "AccessPointId"].contains(&k.as_ref())
                    && !v.is_empty()
            })
            .map(|(_, v)| v.into_owned())
    });
    Ok((action.to_string(), resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn efs(method: &str, url: &str) -> String {
        let (action, resource) = efs_action(&method.parse().unwrap(), &url.parse().unwrap())
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        format!("{action} {}", resource.unwrap_or_default())
    }

    #[test]
    fn efs_actions_come_from_method_and_path() {
        let host = "https://elasticfilesystem.us-east-1.amazonaws.com";
        assert_eq!(
            efs("GET", &format!("{host}/2015-02-01/file-systems")),
            "DescribeFileSystems "
        );
        assert_eq!(
            efs(
                "GET",
                &format!("{host}/2015-02-01/file-systems?Marker=m1&FileSystemId=fs-1")
            ),
            "DescribeFileSystems fs-1"
        );
        assert_eq!(
            efs(
                "GET",
                "http://127.0.0.1:5000/2015-02-01/mount-targets?FileSystemId=fs-0abc"
            ),
            "DescribeMountTargets fs-0abc"
        );
        assert_eq!(
            efs(
                "GET",
                &format!("{host}/2015-02-01/mount-targets/fsmt-1/security-groups")
            ),
            "DescribeMountTargetSecurityGroups fsmt-1"
        );
        assert_eq!(
            efs(
                "PUT",
                &format!("{host}/2015-02-01/mount-targets/fsmt-1/security-groups")
            ),
            "ModifyMountTargetSecurityGroups fsmt-1"
        );
        assert_eq!(
            efs("POST", &format!("{host}/2015-02-01/mount-targets")),
            "CreateMountTarget "
        );
        assert_eq!(
            efs("DELETE", &format!("{host}/2015-02-01/file-systems/fs-1")),
            "DeleteFileSystem fs-1"
        );
        assert_eq!(
            efs(
                "GET",
                &format!("{host}/2015-02-01/file-systems/fs-1/policy")
            ),
            "DescribeFileSystemPolicy fs-1"
        );
        assert_eq!(
            efs(
                "GET",
                &format!("{host}/2015-02-01/file-systems/replication-configurations")
            ),
            "DescribeReplicationConfigurations "
        );
        assert_eq!(
            efs("POST", &format!("{host}/2015-02-01/resource-tags/fs-1")),
            "TagResource fs-1"
        );
        assert_eq!(
            efs(
                "GET",
                &format!("{host}/2015-02-01/access-points?AccessPointId=fsap-1")
            ),
            "DescribeAccessPoints fsap-1"
        );
    }

    #[test]
    fn an_unknown_efs_path_or_method_names_no_action() {
        let host = "https://elasticfilesystem.us-east-1.amazonaws.com";
        for (m, path) in [
            ("GET", "/2015-02-01/file-systems/fs-1"),
            ("PATCH", "/2015-02-01/file-systems"),
            ("GET", "/2015-02-01/nothing"),
            ("GET", "/2099-01-01/file-systems"),
            ("GET", "/"),
        ] {
            let err = efs_action(
                &m.parse().unwrap(),
                &format!("{host}{path}").parse().unwrap(),
            )
            .unwrap_err();
            assert!(err.contains("EFS"), "{m} {path}: {err}");
        }
    }
}
