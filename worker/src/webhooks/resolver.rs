//! The DNS resolver webhook deliveries connect through, so the guard judges the very addresses
//! the connection goes to, not an earlier answer for the same name.

use std::error::Error;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use strata_core::webhooks::guard::{self, Allow};

/// reqwest's DNS resolver for webhook deliveries: resolves as usual, then applies
/// `guard::check_addrs`, so the address connected to is one the guard passed (a name re-pointed
/// at an internal address between check and connect is refused).
///
/// reqwest never asks a resolver about IP-literal URLs (`http://10.0.0.1/`): it connects to
/// them directly, so the caller must judge those with `guard::check` before sending, which it
/// does for every URL at each delivery attempt anyway.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow: Arc<Allow>,
}

impl GuardedResolver {
    /// A resolver that lets through internal addresses only as `allow` says.
    pub fn new(allow: Allow) -> GuardedResolver {
        GuardedResolver {
            allow: Arc::new(allow),
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = Arc::clone(&self.allow);
        Box::pin(async move {
            let host = name.as_str();
            // Port 0: reqwest puts in the URL's port, or the scheme's, before connecting.
            let addrs = guard::resolve(host, 0).await?;
            let passed = guard::check_addrs(host, &addrs, &allow)?;
            Ok(Box::new(passed.into_iter()) as Addrs)
        })
    }
}

/// The guard's refusal inside a resolver error, for callers that want to say why a delivery
/// was not attempted rather than report a connection failure.
pub fn refusal_in<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a guard::Refusal> {
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(refusal) = error.downcast_ref::<guard::Refusal>() {
            return Some(refusal);
        }
        source = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use strata_core::webhooks::guard::Refusal;

    async fn resolve(
        allow: &[&str],
        host: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn Error + Send + Sync>> {
        let resolver = GuardedResolver::new(Allow::parse(allow.iter().copied()).unwrap());
        let addrs = resolver.resolve(host.parse().unwrap()).await?;
        Ok(addrs.map(|addr| addr.ip()).collect())
    }

    // localhost is in /etc/hosts, so none of these needs a network.

    #[tokio::test]
    async fn refuses_a_name_resolving_to_loopback() {
        let err = resolve(&[], "localhost").await.unwrap_err();
        match refusal_in(err.as_ref()) {
            Some(Refusal::Internal { host, class, .. }) => {
                assert_eq!(host, "localhost");
                assert_eq!(*class, "loopback");
            }
            other => panic!("expected a loopback refusal, got {other:?} from {err}"),
        }
    }

    #[tokio::test]
    async fn passes_loopback_when_allow_listed() {
        // ::1 too, for systems whose /etc/hosts also maps localhost to it.
        let ips = resolve(&["127.0.0.0/8", "::1"], "localhost").await.unwrap();
        assert!(ips.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{ips:?}");
    }

    #[tokio::test]
    async fn passes_a_name_allow_listed_by_name() {
        let ips = resolve(&["localhost"], "localhost").await.unwrap();
        assert!(
            !ips.is_empty() && ips.iter().all(IpAddr::is_loopback),
            "{ips:?}"
        );
    }

    #[tokio::test]
    async fn refuses_through_reqwest_and_says_why() {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver::new(Allow::default())))
            .build()
            .unwrap();
        // Refused before any connection is tried: nothing listens on port 9 anyway.
        let err = client
            .get("http://localhost:9/hook")
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        let refusal = refusal_in(&err).expect("the guard's refusal in the error chain");
        assert!(matches!(
            refusal,
            Refusal::Internal {
                class: "loopback",
                ..
            }
        ));
    }
}
