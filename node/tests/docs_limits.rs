//! docs/protocol.md quotes the limits the code has: each quoted figure is built here from its
//! constant, so changing a limit without its doc (or the other way round) fails this test.

use vidswarm_node::fetch::download::{ENDGAME_IN_FLIGHT, MAX_PEER_FAILURES};
use vidswarm_node::fetch::run::{ENOUGH_HOLDERS, LOOKUP_EVERY, MAX_LOOKUPS};
use vidswarm_node::fetch::{FetchOptions, MANIFEST_FANOUT, MANIFEST_STAGGER};
use vidswarm_node::net::{
    NetConfig, CONNECTION_TIMEOUT, DIAL_CONCURRENCY, FIRST_BACKOFF, MAX_BACKOFF, MAX_SERVING,
    QUIC_HANDSHAKE_TIMEOUT,
};
use vidswarm_proto::wire::{MAX_ANNOUNCEMENT_BYTES, MAX_REQUEST_BYTES};
use vidswarm_proto::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE};

const PROTOCOL: &str = include_str!("../../docs/protocol.md");

/// Asserts that `text` (the doc `name`), its line breaks and indents folded into single spaces,
/// says every one of `quoted`.
fn assert_quotes(name: &str, text: &str, quoted: &[String]) {
    let doc = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let missing: Vec<&String> = quoted
        .iter()
        .filter(|q| !doc.contains(q.as_str()))
        .collect();
    assert!(missing.is_empty(), "{name} no longer says: {missing:#?}");
}

#[test]
fn docs_protocol_quotes_the_limits_from_their_constants() {
    let fetch = FetchOptions::default();
    let net = NetConfig::default();
    let pace = vidswarm_node::service::AutoFetchConfig::default();
    let quoted = [
        format!("at most {} per peer", fetch.per_peer),
        format!("at most `{} × peers` chunks", fetch.per_peer),
        format!("at most {} served at once", MAX_SERVING),
        format!("at most {ENDGAME_IN_FLIGHT} requests are in flight"),
        format!("(excluded after {MAX_PEER_FAILURES})"),
        format!(
            "Requests time out after {} s",
            net.request_timeout.as_secs()
        ),
        format!("a request is at most {} KiB", MAX_REQUEST_BYTES / 1024),
        format!(
            "for at most {} s (`NetConfig::goodbye_wait`)",
            net.goodbye_wait.as_secs()
        ),
        format!("a chunk 1 byte to {} MiB", MAX_CHUNK_SIZE / (1024 * 1024)),
        format!("at most {} KiB, listing", MAX_ANNOUNCEMENT_BYTES / 1024),
        format!(
            "{} seconds ({} by default)",
            "`--timeout`",
            fetch.stall_timeout.as_secs()
        ),
        format!("chunks of {} KiB", DEFAULT_CHUNK_SIZE / 1024),
        format!("{MANIFEST_FANOUT} are asked at once"),
        format!("at most {MAX_LOOKUPS} at once (`MAX_LOOKUPS`)"),
        format!("a new round {} s after the last", LOOKUP_EVERY.as_secs()),
        format!("A fragment with {ENOUGH_HOLDERS} known holders or more (`ENOUGH_HOLDERS`"),
        format!("below {ENOUGH_HOLDERS} again"),
        format!("one more every {} ms", MANIFEST_STAGGER.as_millis()),
        format!("within {} s on TCP", CONNECTION_TIMEOUT.as_secs()),
        format!(
            "QUIC handshake within {} s",
            QUIC_HANDSHAKE_TIMEOUT.as_secs()
        ),
        format!("Up to {DIAL_CONCURRENCY} of a peer's addresses"),
        format!(
            "looked at again every {} s",
            vidswarm_node::net::advertise::RECHECK_EVERY.as_secs()
        ),
        format!(
            "skipped for {} s, twice as long after each further failure, up to {} s",
            FIRST_BACKOFF.as_secs(),
            MAX_BACKOFF.as_secs()
        ),
        format!("serves at most {MAX_SERVING} requests at once"),
        format!(
            "at most {} auto-fetches at once (`--max-auto-fetches`); a later announcement asks again. A video whose auto-fetch failed is left alone for {} s, twice as long after each further failure up to {} min",
            pace.max_running,
            pace.first_backoff.as_secs(),
            pace.max_backoff.as_secs() / 60
        ),
    ];
    assert_quotes("docs/protocol.md", PROTOCOL, &quoted);
}

const SECURITY: &str = include_str!("../../docs/security.md");

#[test]
fn docs_security_quotes_the_http_limits_from_their_constants() {
    use vidswarm_node::http::{
        DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
        DEFAULT_MAX_PER_CLIENT, DEFAULT_SEND_TIMEOUT,
    };
    let quoted = [
        format!("{DEFAULT_MAX_CONNECTIONS} at once (`--http-max-connections`)"),
        format!(
            "{DEFAULT_MAX_PER_CLIENT} of them from one client address (`--http-max-per-client`"
        ),
        format!(
            "within {} s (`--http-header-timeout`)",
            DEFAULT_HEADER_TIMEOUT.as_secs()
        ),
        format!(
            "after {} s with no byte (`--http-body-timeout`)",
            DEFAULT_BODY_TIMEOUT.as_secs()
        ),
        format!(
            "after {} s in which the client read nothing (`--http-send-timeout`)",
            DEFAULT_SEND_TIMEOUT.as_secs()
        ),
    ];
    assert_quotes("docs/security.md", SECURITY, &quoted);
}

/// `n` as the docs write it: `65,536`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[test]
fn docs_security_quotes_the_swarm_limits_from_their_constants() {
    use vidswarm_node::availability::{AVAILABILITY_TTL, MAX_VIDEOS_PER_PEER};
    use vidswarm_node::fetch::download::MAX_OPEN_FRAGMENTS;
    use vidswarm_node::net::provider_store::{MAX_KEYS_PER_REMOTE_PROVIDER, MAX_REMOTE_KEYS};
    use vidswarm_node::service::auto_fetch::{DEFAULT_MAX_AUTO_FETCHES, MAX_BACKED_OFF};
    let quoted = [
        format!(
            "{} keys in all, {} keys per peer",
            thousands(MAX_REMOTE_KEYS),
            thousands(MAX_KEYS_PER_REMOTE_PROVIDER)
        ),
        format!(
            "lasts {} min without a new announcement",
            AVAILABILITY_TTL.as_secs() / 60
        ),
        format!(
            "{} videos per announcing peer",
            thousands(MAX_VIDEOS_PER_PEER)
        ),
        format!("{DEFAULT_MAX_AUTO_FETCHES} at once (`--max-auto-fetches`)"),
        format!("{} failed videos remembered", thousands(MAX_BACKED_OFF)),
        format!("{MAX_OPEN_FRAGMENTS} unfinished at once (`MAX_OPEN_FRAGMENTS`)"),
    ];
    assert_quotes("docs/security.md", SECURITY, &quoted);
}

#[test]
fn docs_security_quotes_the_budget_and_connection_limits_from_their_constants() {
    use vidswarm_node::net::{
        DEFAULT_MAX_MEMORY, MAX_STREAMS_PER_CONNECTION, MAX_TRANSFER_STREAMS, POSITIVE_CAP,
        REJECTED_HALF_LIFE, REJECTED_WEIGHT,
    };
    use vidswarm_node::service::space::{DEFAULT_MAX_STORE, DEFAULT_MIN_FREE, TIDY_EVERY};
    let quoted = [
        format!("above {} GiB (`--max-memory`", DEFAULT_MAX_MEMORY >> 30),
        format!("{MAX_STREAMS_PER_CONNECTION} open at once, both ways"),
        format!("{MAX_TRANSFER_STREAMS} transfer requests in flight per connection"),
        format!(
            "each rejected announcement costs {}, squared by count, halving in {} s",
            -REJECTED_WEIGHT,
            REJECTED_HALF_LIFE.as_secs()
        ),
        format!("earns at most {POSITIVE_CAP}"),
        format!(
            "within {} GiB in all (`--max-store`",
            DEFAULT_MAX_STORE >> 30
        ),
        format!("less than {} MiB free", DEFAULT_MIN_FREE >> 20),
        format!(
            "every {} s, at start and after each fetch",
            TIDY_EVERY.as_secs()
        ),
    ];
    assert_quotes("docs/security.md", SECURITY, &quoted);
}
