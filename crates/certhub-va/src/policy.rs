//! Which addresses the validator may connect to.
//!
//! In production only globally routable unicast addresses are allowed, so a
//! requester cannot make us probe our own network (SSRF). Test mode
//! (`allow_loopback`) allows everything except addresses one can never
//! connect to (unspecified, multicast, broadcast).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Returns `None` when the address is acceptable, else why it is refused.
pub fn refusal(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, allow_loopback),
        IpAddr::V6(v6) => refusal_v6(v6, allow_loopback),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(net) & mask)
}

/// IPv4 special-purpose ranges (IANA registry) we never connect to in production.
const V4_REFUSED: &[([u8; 4], u32, &str)] = &[
    ([10, 0, 0, 0], 8, "private address (RFC 1918)"),
    ([172, 16, 0, 0], 12, "private address (RFC 1918)"),
    ([192, 168, 0, 0], 16, "private address (RFC 1918)"),
    (
        [100, 64, 0, 0],
        10,
        "shared address space (CGNAT, RFC 6598)",
    ),
    ([169, 254, 0, 0], 16, "link-local address"),
    ([192, 0, 0, 0], 24, "IETF protocol assignment (reserved)"),
    ([192, 0, 2, 0], 24, "documentation address (reserved)"),
    ([198, 51, 100, 0], 24, "documentation address (reserved)"),
    ([203, 0, 113, 0], 24, "documentation address (reserved)"),
    ([198, 18, 0, 0], 15, "benchmarking address (reserved)"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast (reserved)"),
    ([240, 0, 0, 0], 4, "reserved address"),
];

fn refusal_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    if in_v4(ip, [0, 0, 0, 0], 8) {
        return Some("unspecified address");
    }
    if ip.is_multicast() {
        return Some("multicast address");
    }
    if ip.is_broadcast() {
        return Some("broadcast address");
    }
    if allow_loopback {
        return None;
    }
    if ip.is_loopback() {
        return Some("loopback address");
    }
    V4_REFUSED
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

/// IPv6 ranges inside 2000::/3 that are still special-purpose.
const V6_REFUSED: &[(Ipv6Addr, u32, &str)] = &[
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignment (reserved)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation address (reserved)",
    ),
    (
        Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
        16,
        "6to4 address (reserved)",
    ),
];

fn refusal_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified address");
    }
    if ip.is_multicast() {
        return Some("multicast address");
    }
    if allow_loopback {
        return None;
    }
    if ip.is_loopback() {
        return Some("loopback address");
    }
    if in_v6(ip, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7) {
        return Some("unique local address (ULA)");
    }
    if in_v6(ip, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10) {
        return Some("link-local address");
    }
    // Everything outside global unicast (IPv4-mapped, NAT64, discard, site-local…).
    if !in_v6(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        return Some("reserved address");
    }
    V6_REFUSED
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str, lo: bool) -> bool {
        refusal(s.parse().unwrap(), lo).is_some()
    }

    #[test]
    fn production_refuses_special_ranges() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.2.5",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(refused(a, false), "{a} should be refused");
        }
    }

    #[test]
    fn production_allows_public() {
        for a in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            assert!(!refused(a, false), "{a} should be allowed");
        }
    }

    #[test]
    fn test_mode_allows_loopback_but_not_unspecified_or_multicast() {
        assert!(!refused("127.0.0.1", true));
        assert!(!refused("::1", true));
        assert!(!refused("10.0.0.1", true));
        assert!(refused("0.0.0.0", true));
        assert!(refused("::", true));
        assert!(refused("224.0.0.1", true));
        assert!(refused("ff02::1", true));
    }
}
