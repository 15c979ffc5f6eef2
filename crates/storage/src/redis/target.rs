//! [`RedisTarget`]: which Redis deployment to use and how to reach it, read from the URL forms
//! the contract names (and a CA file for TLS), turned into a `fred` configuration.
//!
//! | URL | deployment |
//! | --- | --- |
//! | `redis://[user:pass@]host[:port][/db]` | one server |
//! | `rediss://…` | the same over TLS |
//! | `redis-sentinel://[user:pass@]host:port[,host:port…][/db]?service=NAME` | the primary that Sentinel names (`rediss-sentinel://`: over TLS) |
//! | `redis-cluster://[user:pass@]host:port[,host:port…]` | a Redis Cluster (`rediss-cluster://`: over TLS) |
//!
//! Anything else is refused with the reason (never with the URL, which may hold a password):
//! a scheme or option we do not know, Sentinel without a service, a database on a cluster, or a
//! CA file with a URL that does not use TLS. A TLS URL checks the server's certificate against
//! the system's roots, or only against the CA file when one is given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fred::prelude::Config;
use fred::types::config::{TlsConfig, TlsConnector};

use crate::{StorageError, StoreResult};

/// The kind of Redis deployment a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server.
    Standalone,
    /// A primary found through Sentinel.
    Sentinel,
    /// A Redis Cluster: keys spread over slots, node-to-node messages on sharded pub/sub.
    Cluster,
}

/// Where the Redis deployment is: a URL in one of the forms above, and optionally the CA
/// certificates (PEM) a TLS URL is checked against instead of the system's roots.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    url: String,
    tls_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for RedisTarget {
    /// Leaves the URL out: it may hold a password.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisTarget")
            .field("tls_ca_file", &self.tls_ca_file)
            .finish_non_exhaustive()
    }
}

impl From<&str> for RedisTarget {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<&String> for RedisTarget {
    fn from(url: &String) -> Self {
        Self::new(url)
    }
}

impl From<String> for RedisTarget {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl From<&RedisTarget> for RedisTarget {
    fn from(target: &RedisTarget) -> Self {
        target.clone()
    }
}

impl RedisTarget {
    /// The deployment at `url` (read when connecting; [`RedisTarget::check`] reads it now).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls_ca_file: None,
        }
    }

    /// Checks TLS certificates against the PEM certificates in `path` only.
    #[must_use]
    pub fn with_tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Which kind of deployment the URL names (by its scheme; not checked further).
    pub fn topology(&self) -> RedisTopology {
        match Scheme::of(&self.url).map(|scheme| scheme.topology) {
            Some(topology) => topology,
            None => RedisTopology::Standalone,
        }
    }

    /// Whether the URL and the CA file can be used, checked without connecting (a
    /// configuration check runs it before anything starts).
    pub fn check(&self) -> StoreResult<()> {
        self.config().map(drop)
    }

    /// The `fred` configuration for this deployment.
    pub(crate) fn config(&self) -> StoreResult<Config> {
        let scheme = Scheme::of(&self.url).ok_or_else(|| {
            invalid(
                "the scheme must be redis://, rediss://, redis-sentinel://, rediss-sentinel://, \
                 redis-cluster:// or rediss-cluster://",
            )
        })?;
        let fred_url = scheme.fred_url(&self.url)?;
        let mut config = Config::from_url(&fred_url).map_err(crate::error::redis)?;
        match (&self.tls_ca_file, scheme.tls) {
            (Some(path), true) => config.tls = Some(tls_with_ca(path)?),
            (Some(_), false) => {
                return Err(invalid(
                    "redis.tls_ca_file is set but the URL does not use TLS (rediss://, \
                     rediss-sentinel:// or rediss-cluster://)",
                ));
            }
            (None, true) if config.tls.is_none() => {
                return Err(invalid("TLS is not available in this build"));
            }
            (None, _) => {}
        }
        Ok(config)
    }
}

/// A URL scheme we read.
#[derive(Debug, Clone, Copy)]
struct Scheme {
    name: &'static str,
    topology: RedisTopology,
    tls: bool,
}

const SCHEMES: [Scheme; 6] = [
    Scheme::new("redis", RedisTopology::Standalone, false),
    Scheme::new("rediss", RedisTopology::Standalone, true),
    Scheme::new("redis-sentinel", RedisTopology::Sentinel, false),
    Scheme::new("rediss-sentinel", RedisTopology::Sentinel, true),
    Scheme::new("redis-cluster", RedisTopology::Cluster, false),
    Scheme::new("rediss-cluster", RedisTopology::Cluster, true),
];

impl Scheme {
    const fn new(name: &'static str, topology: RedisTopology, tls: bool) -> Self {
        Self {
            name,
            topology,
            tls,
        }
    }

    fn of(url: &str) -> Option<Self> {
        let (scheme, _) = url.split_once("://")?;
        SCHEMES
            .into_iter()
            .find(|known| known.name.eq_ignore_ascii_case(scheme))
    }

    /// The URL in the form `fred` reads: extra hosts become `node=` options, and Sentinel's
    /// `service` becomes `sentinelServiceName`.
    fn fred_url(self, url: &str) -> StoreResult<String> {
        let (_, rest) = url.split_once("://").ok_or_else(|| invalid("not a URL"))?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match before_query.find('/') {
            Some(at) => before_query.split_at(at),
            None => (before_query, ""),
        };
        let (credentials, hosts) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        let mut hosts = hosts.split(',').map(str::trim);
        let first = hosts.next().filter(|host| !host.is_empty());
        let first = first.ok_or_else(|| invalid("the URL names no host"))?;
        let mut options: Vec<String> = Vec::new();
        for host in hosts {
            if host.is_empty() {
                return Err(invalid("an empty host in the host list"));
            }
            if self.topology == RedisTopology::Standalone {
                return Err(invalid(
                    "several hosts need redis-sentinel:// or redis-cluster://",
                ));
            }
            options.push(format!("node={host}"));
        }
        let mut service = None;
        for option in query.split('&').filter(|option| !option.is_empty()) {
            let (name, value) = option.split_once('=').unwrap_or((option, ""));
            match (self.topology, name) {
                (RedisTopology::Sentinel, "service" | "sentinelServiceName") => {
                    service = Some(value.to_owned());
                }
                (RedisTopology::Sentinel, "sentinelUsername" | "sentinelPassword") => {
                    return Err(invalid(
                        "separate Sentinel credentials are not supported: the URL's user and \
                         password are used for the Sentinels and the primary alike",
                    ));
                }
                (RedisTopology::Sentinel | RedisTopology::Cluster, "node") => {
                    options.push(option.to_owned());
                }
                _ => {
                    return Err(invalid(&format!(
                        "unknown option {name:?} for {}://",
                        self.name
                    )));
                }
            }
        }
        if self.topology == RedisTopology::Sentinel {
            let service = service.filter(|service| !service.is_empty());
            let service = service.ok_or_else(|| {
                invalid("redis-sentinel:// needs the primary's name: ?service=NAME")
            })?;
            options.push(format!("sentinelServiceName={service}"));
        }
        if self.topology == RedisTopology::Cluster && !matches!(path, "" | "/" | "/0") {
            return Err(invalid(
                "a Redis Cluster has no databases: drop the /db part",
            ));
        }
        let query = if options.is_empty() {
            String::new()
        } else {
            format!("?{}", options.join("&"))
        };
        let path = if self.topology == RedisTopology::Cluster {
            ""
        } else {
            path
        };
        Ok(format!("{}://{credentials}{first}{path}{query}", self.name))
    }
}

/// TLS that trusts only the certificates in `path`.
fn tls_with_ca(path: &Path) -> StoreResult<TlsConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let shown = path.display();
    let unreadable =
        |error: &dyn std::fmt::Display| invalid(&format!("redis.tls_ca_file {shown}: {error}"));
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path).map_err(|error| unreadable(&error))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|error| unreadable(&error))?;
        roots.add(certificate).map_err(|error| unreadable(&error))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"holds no PEM certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| unreadable(&error))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(client).into())
}

fn invalid(reason: &str) -> StorageError {
    StorageError::Config(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fred_url(url: &str) -> Result<String, String> {
        let scheme = Scheme::of(url).ok_or("no scheme")?;
        scheme.fred_url(url).map_err(|error| error.to_string())
    }

    #[test]
    fn host_lists_and_services_become_fred_options() {
        assert_eq!(
            fred_url("redis-sentinel://:pw@a:26379,b:26380/2?service=mymaster"),
            Ok("redis-sentinel://:pw@a:26379/2?node=b:26380&sentinelServiceName=mymaster".into())
        );
        assert_eq!(
            fred_url("redis-cluster://a:7000,b:7001,c:7002"),
            Ok("redis-cluster://a:7000?node=b:7001&node=c:7002".into())
        );
        assert_eq!(
            fred_url("rediss://user:p@ss@host:6380/1"),
            Ok("rediss://user:p@ss@host:6380/1".into())
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_the_reason() {
        for (url, reason) in [
            ("redis-sentinel://a:26379", "service=NAME"),
            ("redis-sentinel://a:26379/?service=", "service=NAME"),
            ("redis-cluster://a:7000/3", "no databases"),
            ("redis://a:1,b:2", "several hosts"),
            ("redis://a:1?tls=1", "unknown option"),
            ("redis-cluster://a:1,,b:2", "empty host"),
            (
                "redis-sentinel://a:1/?service=m&sentinelPassword=x",
                "not supported",
            ),
            ("http://a:1", "scheme"),
        ] {
            let error = RedisTarget::new(url).check().err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|error| error.contains(reason)),
                "{url}: {error:?}"
            );
        }
        let with_ca = RedisTarget::new("redis://a:1").with_tls_ca_file("/nonexistent.pem");
        assert!(
            with_ca
                .check()
                .is_err_and(|e| e.to_string().contains("does not use TLS"))
        );
        let missing = RedisTarget::new("rediss://a:1").with_tls_ca_file("/nonexistent.pem");
        assert!(
            missing
                .check()
                .is_err_and(|e| e.to_string().contains("/nonexistent.pem"))
        );
    }

    #[test]
    fn every_form_of_the_contract_is_read() {
        for (url, topology) in [
            ("redis://127.0.0.1:6379/0", RedisTopology::Standalone),
            ("rediss://127.0.0.1:6380", RedisTopology::Standalone),
            (
                "redis-sentinel://127.0.0.1:26379,127.0.0.1:26380/?service=mymaster",
                RedisTopology::Sentinel,
            ),
            (
                "rediss-cluster://127.0.0.1:7000,127.0.0.1:7001",
                RedisTopology::Cluster,
            ),
        ] {
            let target = RedisTarget::new(url);
            assert_eq!(target.topology(), topology);
            target
                .check()
                .unwrap_or_else(|error| panic!("{url}: {error}"));
        }
        let config = RedisTarget::new("rediss://127.0.0.1:6380").config().ok();
        assert!(
            config.is_some_and(|config| config.tls.is_some()),
            "TLS is on"
        );
    }

    #[test]
    fn the_url_stays_out_of_debug_output() {
        let shown = format!("{:?}", RedisTarget::new("redis://:hunter2@host"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
