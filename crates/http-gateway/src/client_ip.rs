//! The client's address: the peer's, or the one its trusted proxy forwarded.

use std::net::{IpAddr, Ipv6Addr};

use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;

use crate::settings::IpNet;

/// The address a request comes from. `X-Forwarded-For` is believed only when the peer is one
/// of `trusted_proxies`; then the right-most address that is not itself a trusted proxy wins
/// (the left-most entries can be forged by the client).
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let trusted = |address: IpAddr| {
        trusted_proxies
            .iter()
            .any(|network| network.contains(address))
    };
    if !trusted(peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|address| !trusted(*address))
            .unwrap_or(peer),
    )
}

/// [`client_ip`] for an actix request.
pub fn request_ip(request: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    client_ip(
        request.peer_addr().map(|address| address.ip()),
        request.headers(),
        trusted_proxies,
    )
}

/// The address a client is counted under by rate limits: IPv4 addresses alone (a v4-mapped
/// IPv6 address as its IPv4 one), IPv6 ones by their /64, which one client usually owns whole.
pub fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn check(peer: &str, forwarded: Option<&str>, trusted: &[&str], expected: &str) {
        let mut headers = HeaderMap::new();
        if let Some(value) = forwarded {
            headers.insert(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
            );
        }
        let trusted: Vec<IpNet> = trusted
            .iter()
            .filter_map(|text| IpNet::parse(text))
            .collect();
        let result = client_ip(peer.parse().ok(), &headers, &trusted);
        assert_eq!(result, expected.parse().ok(), "{peer} {forwarded:?}");
    }

    #[test]
    fn forwarded_addresses_only_from_trusted_proxies() {
        check("1.2.3.4", None, &[], "1.2.3.4");
        check("1.2.3.4", Some("9.9.9.9"), &[], "1.2.3.4");
        check("10.0.0.1", Some("9.9.9.9"), &["10.0.0.0/8"], "9.9.9.9");
        check(
            "10.0.0.1",
            Some("6.6.6.6, 9.9.9.9"),
            &["10.0.0.0/8"],
            "9.9.9.9",
        );
        check(
            "10.0.0.1",
            Some("9.9.9.9, 10.0.0.2"),
            &["10.0.0.0/8"],
            "9.9.9.9",
        );
        check("10.0.0.1", Some("not-an-ip"), &["10.0.0.0/8"], "10.0.0.1");
        check("10.0.0.1", None, &["10.0.0.0/8"], "10.0.0.1");
    }
}
