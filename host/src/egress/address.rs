//! Which network addresses are internal: loopback, link-local (the cloud
//! metadata services among them), private and the other ranges a plugin
//! must not reach through a name it was allowed by pattern.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is internal, in words for a denial; `None` for a
/// public address.
pub fn internal_class(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

const AWS_METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip == AWS_METADATA_V4 {
        Some("the instance metadata service")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_private() {
        Some("private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared address space")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("multicast or reserved")
    } else {
        None
    }
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    if ip == AWS_METADATA_V6 {
        Some("the instance metadata service")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_unicast_link_local() {
        Some("link-local")
    } else if ip.is_unique_local() {
        Some("private")
    } else if ip.is_multicast() {
        Some("multicast or reserved")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Option<&'static str> {
        internal_class(text.parse().unwrap())
    }

    #[test]
    fn metadata_services_loopback_and_private_ranges_are_internal() {
        assert_eq!(
            class("169.254.169.254"),
            Some("the instance metadata service")
        );
        assert_eq!(
            class("fd00:ec2::254"),
            Some("the instance metadata service")
        );
        assert_eq!(class("127.0.0.1"), Some("loopback"));
        assert_eq!(class("127.8.9.10"), Some("loopback"));
        assert_eq!(class("::1"), Some("loopback"));
        assert_eq!(class("::ffff:127.0.0.1"), Some("loopback"), "v4-mapped");
        assert_eq!(class("169.254.1.1"), Some("link-local"));
        assert_eq!(class("fe80::1"), Some("link-local"));
        assert_eq!(class("10.1.2.3"), Some("private"));
        assert_eq!(class("172.16.0.1"), Some("private"));
        assert_eq!(class("192.168.1.1"), Some("private"));
        assert_eq!(class("fd12:3456::1"), Some("private"));
        assert_eq!(class("100.64.0.1"), Some("shared address space"));
        assert_eq!(class("0.0.0.0"), Some("unspecified"));
        assert_eq!(class("::"), Some("unspecified"));
        assert_eq!(class("224.0.0.1"), Some("multicast or reserved"));
    }

    #[test]
    fn public_addresses_are_not_internal() {
        for ip in [
            "52.94.236.248",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2600:1f18::1",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }
}
