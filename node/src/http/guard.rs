//! What a web page in the user's browser may make the API do.
//!
//! - **Host allow-list**, against DNS rebinding: a page of `evil.example` whose name is made to
//!   resolve to 127.0.0.1 talks to the node as its own origin, but its requests still carry
//!   `Host: evil.example`. Allowed: any IP address, `localhost` and `*.localhost`, and the names
//!   given with `--allow-host` (`*` allows every name).
//! - **Cross-site writes**: a form or a `fetch` with a simple content type reaches a route without
//!   a CORS preflight. A write is refused when the browser says it comes from another site: an
//!   `Origin` that is neither this node's own nor one of `--cors-origin`, or `Sec-Fetch-Site:
//!   cross-site`/`same-site` with no such origin. curl, Postman and the CLI send neither header.
//! - **CORS**: off unless `--cors-origin` names the origins whose pages may read the API.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::ApiError;

/// Which browsers' requests the API takes.
#[derive(Debug, Clone, Default)]
pub struct WebPolicy {
    /// Host names allowed beside IP addresses and localhost names; `*` allows any.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://app.example:8443`) whose pages may read the API and write to it; `*`
    /// lets any page read (writes still want the origin named).
    pub cors_origins: Vec<String>,
}

impl WebPolicy {
    fn any_host(&self) -> bool {
        self.allowed_hosts.iter().any(|h| h == "*")
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        self.any_host()
            || name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.trim_end_matches('.').eq_ignore_ascii_case(name))
    }

    fn origin_named(&self, origin: &str) -> bool {
        self.cors_origins
            .iter()
            .any(|o| o != "*" && o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }

    /// The CORS layer for `cors_origins`, or none when it is empty.
    pub(super) fn cors(&self) -> Option<CorsLayer> {
        if self.cors_origins.is_empty() {
            return None;
        }
        let origins = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
            )
        };
        Some(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::DELETE,
                    Method::HEAD,
                ])
                .allow_headers([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::CONTENT_TYPE,
                    axum::http::header::RANGE,
                ])
                .expose_headers([
                    axum::http::header::CONTENT_RANGE,
                    axum::http::header::CONTENT_LENGTH,
                    axum::http::header::ACCEPT_RANGES,
                ]),
        )
    }
}

/// `host[:port]` or `[v6][:port]` without the port.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Every request: its `Host` must be allowed. A request with none (HTTP/1.0, tests) passes: a
/// browser always sends one.
pub(super) async fn check_host(
    State(policy): State<Arc<WebPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(host) = request.headers().get(HOST) {
        let allowed = host.to_str().is_ok_and(|h| policy.host_allowed(h));
        if !allowed {
            return ApiError::forbidden(format!(
                "this node does not answer for the host {:?}: start it with --allow-host NAME to serve that name",
                String::from_utf8_lossy(host.as_bytes())
            ))
            .into_response();
        }
    }
    next.run(request).await
}

/// Routes that change state: refused when a browser says the request comes from another site.
pub(super) async fn refuse_cross_site(
    State(policy): State<Arc<WebPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(why) = same_site_or_named(&policy, request.headers()) {
        return ApiError::forbidden(why).into_response();
    }
    next.run(request).await
}

fn same_site_or_named(policy: &WebPolicy, headers: &HeaderMap) -> Result<(), String> {
    let origin = headers.get(ORIGIN).map(|o| o.to_str().unwrap_or("?"));
    if let Some(origin) = origin {
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        let own = host.is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
        });
        if own || policy.origin_named(origin) {
            return Ok(());
        }
        return Err(format!(
            "a page of {origin} may not change this node's state: start the node with --cors-origin {origin} to allow it"
        ));
    }
    // No Origin: a browser's cross-site GET (an <img>, a link) still says where it comes from.
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("cross-site" | "same-site") => {
            Err("a page of another site may not change this node's state".to_owned())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], origins: &[&str]) -> WebPolicy {
        WebPolicy {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            cors_origins: origins.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn hosts_allowed_are_addresses_localhost_names_and_the_ones_given() {
        let p = policy(&["video.example"], &[]);
        for ok in [
            "127.0.0.1:8000",
            "10.1.2.3",
            "[::1]:8000",
            "[fe80::1]",
            "localhost:8000",
            "LocalHost.",
            "node.localhost:80",
            "video.example:8080",
            "VIDEO.example.",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for refused in [
            "evil.example:8000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "video.example.evil",
            "",
        ] {
            assert!(!p.host_allowed(refused), "{refused}");
        }
        assert!(policy(&["*"], &[]).host_allowed("anything.example"));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn writes_from_another_site_are_refused_and_own_or_named_origins_pass() {
        let p = policy(&[], &["https://app.example"]);
        let host = ("host", "127.0.0.1:8000");
        // curl, the CLI: no browser headers.
        assert!(same_site_or_named(&p, &headers(&[host])).is_ok());
        assert!(
            same_site_or_named(&p, &headers(&[host, ("origin", "http://127.0.0.1:8000")])).is_ok()
        );
        assert!(
            same_site_or_named(&p, &headers(&[host, ("origin", "https://app.example")])).is_ok()
        );
        assert!(
            same_site_or_named(&p, &headers(&[host, ("sec-fetch-site", "same-origin")])).is_ok()
        );
        assert!(same_site_or_named(&p, &headers(&[host, ("sec-fetch-site", "none")])).is_ok());
        for bad in [
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("origin", "null")],
            vec![host, ("origin", "http://127.0.0.1:9000")],
            vec![host, ("sec-fetch-site", "cross-site")],
            vec![host, ("sec-fetch-site", "same-site")],
            vec![("origin", "http://127.0.0.1:8000")],
        ] {
            assert!(same_site_or_named(&p, &headers(&bad)).is_err(), "{bad:?}");
        }
        // `*` lets pages read, not write.
        let any = policy(&[], &["*"]);
        assert!(
            same_site_or_named(&any, &headers(&[host, ("origin", "http://evil.example")])).is_err()
        );
    }
}
