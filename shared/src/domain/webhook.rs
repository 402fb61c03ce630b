//! Webhook endpoints, and when a failed delivery is tried again.
//!
//! The stack's endpoints are a small list (`WEBHOOK_ENDPOINTS`, JSON),
//! checked once at start-up: each has an id, an HTTPS URL, the event types
//! it wants (all when none are named), the callers whose orders it may
//! receive (all when none are named), and whether its events carry codes.
//! Which addresses a URL may reach is checked again when it is resolved,
//! on every delivery ([`is_public`]).

use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use url::Url;

/// The event types an endpoint may ask for.
pub const EVENT_TYPES: &[&str] = &[
    "order.completed",
    "order.cancelled",
    "order.failed",
    "order.abandoned",
    "order.not_placed",
];

/// Endpoints a stack may have: a small list.
pub const MAX_ENDPOINTS: usize = 20;

/// The longest endpoint list, in bytes: Lambda keeps all of a function's
/// environment within 4 KB, and the stack's other settings take about
/// 1.7 KB of it.
pub const MAX_LIST_BYTES: usize = 2_000;

/// One endpoint, as checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Names the endpoint in logs, metrics, its secret and its breaker.
    pub id: String,
    pub url: Url,
    /// Event types it receives; empty: all.
    pub types: BTreeSet<String>,
    /// Callers whose orders it receives (`placedBy`); empty: all.
    pub placed_by: BTreeSet<String>,
    /// Whether its events carry the codes.
    pub codes: bool,
}

impl Endpoint {
    /// Whether an event of `kind` about an order `placed_by` goes here.
    pub fn wants(&self, kind: &str, placed_by: Option<&str>) -> bool {
        let kind_ok = self.types.is_empty() || self.types.contains(kind);
        let caller_ok = self.placed_by.is_empty()
            || placed_by.is_some_and(|caller| self.placed_by.contains(caller));
        kind_ok && caller_ok
    }
}

/// Which URLs are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schemes {
    /// HTTPS only: a deployed stack.
    HttpsOnly,
    /// Plain HTTP to a loopback address too: a local run.
    LoopbackHttp,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Raw {
    id: String,
    url: String,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    placed_by: Vec<String>,
    #[serde(default = "yes")]
    codes: bool,
}

fn yes() -> bool {
    true
}

/// Reads and checks the endpoint list; every problem is named, by the
/// endpoint's position and field.
pub fn parse_endpoints(json: &str, schemes: Schemes) -> Result<Vec<Endpoint>, Vec<String>> {
    let text = json.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if text.len() > MAX_LIST_BYTES {
        return Err(vec![format!(
            "{} bytes; at most {MAX_LIST_BYTES} (a function's environment is at most 4 KB)",
            text.len()
        )]);
    }
    let raw: Vec<Raw> = serde_json::from_str(text).map_err(|e| {
        vec![format!(
            "not a JSON list of endpoints ({{\"id\", \"url\", \"types\", \"placedBy\", \"codes\"}}): {e}"
        )]
    })?;
    let mut problems = Vec::new();
    if raw.len() > MAX_ENDPOINTS {
        problems.push(format!(
            "at most {MAX_ENDPOINTS} endpoints, not {}",
            raw.len()
        ));
    }
    let mut ids = BTreeSet::new();
    let mut endpoints = Vec::new();
    for (n, r) in raw.into_iter().enumerate() {
        let at = |field: &str, what: String| format!("endpoint {n} ({field}): {what}");
        let id_ok = (1..=40).contains(&r.id.len())
            && r.id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            problems.push(at("id", "1 to 40 characters of a-z, 0-9 and -".to_owned()));
        } else if !ids.insert(r.id.clone()) {
            problems.push(at("id", format!("{} is used twice", r.id)));
        }
        let url = match check_url(&r.url, schemes) {
            Ok(url) => Some(url),
            Err(why) => {
                problems.push(at("url", why));
                None
            }
        };
        for kind in &r.types {
            if !EVENT_TYPES.contains(&kind.as_str()) {
                problems.push(at(
                    "types",
                    format!("{kind} is none of {}", EVENT_TYPES.join(", ")),
                ));
            }
        }
        if r.placed_by.iter().any(|p| p.trim().is_empty()) {
            problems.push(at("placedBy", "an empty caller".to_owned()));
        }
        if let Some(url) = url {
            endpoints.push(Endpoint {
                id: r.id,
                url,
                types: r.types.into_iter().collect(),
                placed_by: r.placed_by.into_iter().collect(),
                codes: r.codes,
            });
        }
    }
    if problems.is_empty() {
        Ok(endpoints)
    } else {
        Err(problems)
    }
}

/// An endpoint's URL: HTTPS (or loopback HTTP locally), a host, no user
/// or password, and no address that [`is_public`] refuses when the host
/// is an address.
fn check_url(text: &str, schemes: Schemes) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("no user or password in the URL; the signature authenticates".to_owned());
    }
    let host = url.host().ok_or("no host")?;
    let loopback = match &host {
        url::Host::Domain(name) => *name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    match (url.scheme(), schemes) {
        ("https", _) => {}
        ("http", Schemes::LoopbackHttp) if loopback => {}
        ("http", Schemes::LoopbackHttp) => {
            return Err("plain http is allowed for loopback addresses only".to_owned());
        }
        _ => return Err("expected an https URL".to_owned()),
    }
    if let url::Host::Domain(name) = &host
        && schemes == Schemes::HttpsOnly
        && is_internal_name(name)
    {
        return Err(format!("{name} is a local or internal name"));
    }
    let address = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = address
        && !is_public(ip)
        && !(loopback && schemes == Schemes::LoopbackHttp)
    {
        return Err(format!(
            "{ip} is a private, loopback, link-local or reserved address"
        ));
    }
    Ok(url)
}

/// Names that only resolve inside a host or a private network: refused
/// when the list is read (any other name is judged by the addresses it
/// resolves to, at every delivery).
fn is_internal_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || !name.contains('.')
        || [
            ".localhost",
            ".local",
            ".internal",
            ".localdomain",
            ".home.arpa",
        ]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// Whether a webhook may be sent to `ip`: not loopback, private,
/// link-local (the instance metadata address among them), shared (CGNAT),
/// unspecified, broadcast, multicast, documentation or reserved; an IPv6
/// address mapping an IPv4 one is judged as that one.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (CGNAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24; benchmarking, 198.18.0.0/15.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let carried = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    // NAT64, 64:ff9b::/96: judged as the IPv4 address it carries.
    if s[..6] == [0x0064, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(carried(s[6], s[7]));
    }
    // Only global unicast (2000::/3) is public: loopback, unspecified,
    // IPv4-compatible, unique local, link-local, site-local, multicast and
    // every other reserved range are outside it.
    if (s[0] & 0xe000) != 0x2000 {
        return false;
    }
    // 6to4, 2002::/16: judged as the IPv4 address it carries.
    if s[0] == 0x2002 {
        return is_public_v4(carried(s[1], s[2]));
    }
    // IETF protocol assignments (2001::/23: Teredo, ORCHID…),
    // documentation (2001:db8::/32, 3fff::/20).
    let special_2001 = s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8);
    let documentation = s[0] == 0x3fff && (s[1] & 0xf000) == 0;
    !(special_2001 || documentation)
}

/// When a failed delivery is tried again: one delay after each failed try
/// but the last. The default is Standard Webhooks' suggested schedule
/// (Svix's): 5 s, 5 minutes, 30 minutes, 2, 5, 10 and 10 hours, eight
/// tries over about 27.6 hours; `WEBHOOK_RETRY_SCHEDULE_SECS` sets
/// another (a local run's, in seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

/// Most delays a schedule may have (tries: one more).
pub const MAX_RETRIES: usize = 20;

/// The longest delay between two tries: a day.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(86_400);

impl Default for RetrySchedule {
    fn default() -> Self {
        const MINUTE: u64 = 60;
        const HOUR: u64 = 60 * MINUTE;
        Self(
            [
                5,
                5 * MINUTE,
                30 * MINUTE,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                10 * HOUR,
            ]
            .map(Duration::from_secs)
            .to_vec(),
        )
    }
}

impl RetrySchedule {
    /// Reads `5,300,1800`: whole seconds, 1 to a day each, at most
    /// [`MAX_RETRIES`] (an empty list: one try, no retry).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(Vec::new()));
        }
        let delays = text
            .split(',')
            .map(|part| {
                part.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=MAX_RETRY_DELAY.as_secs()).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        format!(
                            "{part:?} is not a whole number of seconds from 1 to {}",
                            MAX_RETRY_DELAY.as_secs()
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.len() > MAX_RETRIES {
            return Err(format!(
                "at most {MAX_RETRIES} delays, not {}",
                delays.len()
            ));
        }
        Ok(Self(delays))
    }

    /// The delay before the next try after the `attempt`-th (the first is
    /// 1) failed; `None`: no try is left, the delivery is dead-lettered.
    pub fn after(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.0.get(index).copied()
    }

    /// How many tries a delivery gets.
    pub fn tries(&self) -> u32 {
        u32::try_from(self.0.len()).map_or(u32::MAX, |n| n + 1)
    }
}

/// An endpoint's circuit breaker: after [`Breaker::OPEN_AFTER`] failures
/// in a row it opens for [`Breaker::COOL_OFF`], and deliveries to it are
/// counted as failed tries without a request, so an endpoint down for
/// hours neither slows the others nor holds the function's concurrency.
/// Once its cool-off has passed it is half-open: one delivery claims the
/// probe (for its request's time, [`Breaker::probe_until`]) and is sent,
/// the others are held as while it was open; a success closes it, a failed
/// probe opens it again for twice the last cool-off (at most
/// [`Breaker::MAX_COOL_OFF`]). Requests that were under way when it opened
/// count as failures but lengthen nothing: only probes do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breaker {
    /// Failed tries in a row.
    pub failures: u32,
    /// Until when (Unix milliseconds) no request is sent; 0: closed.
    pub open_until_ms: i64,
    /// The last cool-off, in milliseconds (0: never opened since closed).
    pub cool_off_ms: i64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Breaker {
    /// Failures in a row that open the breaker.
    pub const OPEN_AFTER: u32 = 5;
    /// The first cool-off.
    pub const COOL_OFF: Duration = Duration::from_secs(30);
    /// The longest cool-off.
    pub const MAX_COOL_OFF: Duration = Duration::from_secs(600);

    /// Beyond a request's timeout, how long a probe keeps the breaker
    /// held for itself.
    pub const PROBE_MARGIN: Duration = Duration::from_secs(5);

    /// Whether a request may be sent at `now_ms`.
    pub fn allows(&self, now_ms: i64) -> bool {
        now_ms >= self.open_until_ms
    }

    /// Whether its cool-off has passed after it opened: one request (the
    /// probe) may be sent, once claimed.
    pub fn half_open(&self, now_ms: i64) -> bool {
        Self::opens_at(self.failures) && self.allows(now_ms)
    }

    /// Until when a probe sent at `now_ms`, its request taking at most
    /// `timeout`, holds the breaker: other deliveries are not sent
    /// meanwhile, and a probe that never reports (its function stopped)
    /// lets another one go after.
    pub fn probe_until(now_ms: i64, timeout: Duration) -> i64 {
        now_ms.saturating_add(millis(timeout.saturating_add(Self::PROBE_MARGIN)))
    }

    /// Whether `failures` in a row open a closed breaker.
    pub fn opens_at(failures: u32) -> bool {
        failures >= Self::OPEN_AFTER
    }

    /// A closed breaker opened at `now_ms` by `failures` in a row.
    pub fn opened(failures: u32, now_ms: i64) -> Self {
        let cool_off_ms = millis(Self::COOL_OFF);
        Self {
            failures,
            open_until_ms: now_ms.saturating_add(cool_off_ms),
            cool_off_ms,
        }
    }

    /// After its probe failed at `now_ms`: one more failure, open again
    /// for twice the last cool-off, at most [`Breaker::MAX_COOL_OFF`].
    pub fn after_failed_probe(&self, now_ms: i64) -> Self {
        let cool_off_ms = self
            .cool_off_ms
            .max(millis(Self::COOL_OFF) / 2)
            .saturating_mul(2)
            .min(millis(Self::MAX_COOL_OFF));
        Self {
            failures: self.failures.saturating_add(1),
            open_until_ms: now_ms.saturating_add(cool_off_ms),
            cool_off_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> Result<Vec<Endpoint>, Vec<String>> {
        parse_endpoints(json, Schemes::HttpsOnly)
    }

    #[test]
    fn an_endpoint_list_reads_with_its_defaults_and_filters() {
        let endpoints = one(
            r#"[{"id": "shop", "url": "https://hooks.example.com/foxrelay"},
                {"id": "mail-relay", "url": "https://relay.example.com/in", "types": ["order.failed"],
                 "placedBy": ["arn:aws:iam::123456789012:role/web-shop"], "codes": false}]"#,
        )
        .unwrap();
        assert_eq!(endpoints.len(), 2);
        assert!(endpoints[0].codes, "codes by default");
        assert!(endpoints[0].wants("order.completed", None));
        let relay = &endpoints[1];
        assert!(!relay.codes);
        assert!(relay.wants(
            "order.failed",
            Some("arn:aws:iam::123456789012:role/web-shop")
        ));
        assert!(!relay.wants(
            "order.completed",
            Some("arn:aws:iam::123456789012:role/web-shop")
        ));
        // Another caller's order, or one with no caller recorded, never
        // reaches an endpoint narrowed to callers.
        assert!(!relay.wants("order.failed", Some("arn:aws:iam::123456789012:role/other")));
        assert!(!relay.wants("order.failed", None));
        assert_eq!(one("").unwrap(), Vec::new());
        assert_eq!(one("[]").unwrap(), Vec::new());
    }

    #[test]
    fn every_problem_of_a_list_is_named_by_endpoint_and_field() {
        let problems = one(r#"[{"id": "Shop!", "url": "http://hooks.example.com"},
                {"id": "a", "url": "https://user:pw@hooks.example.com"},
                {"id": "a", "url": "https://10.0.0.8/x", "types": ["order.paid"]},
                {"id": "b", "url": "https://169.254.169.254/latest/meta-data"},
                {"id": "c", "url": "not a url", "placedBy": [" "]}]"#)
        .unwrap_err();
        let expect = [
            "endpoint 0 (id)",
            "endpoint 0 (url): expected an https URL",
            "endpoint 1 (url): no user or password",
            "endpoint 2 (id): a is used twice",
            "endpoint 2 (url): 10.0.0.8 is a private",
            "endpoint 2 (types): order.paid is none of",
            "endpoint 3 (url): 169.254.169.254 is a private",
            "endpoint 4 (url): not a URL",
            "endpoint 4 (placedBy)",
        ];
        for e in expect {
            assert!(
                problems.iter().any(|p| p.starts_with(e)),
                "{e}: {problems:?}"
            );
        }
        assert_eq!(problems.len(), expect.len(), "{problems:?}");
        assert!(one(r#"{"id": "x"}"#).is_err(), "not a list");
        assert!(one(r#"[{"id": "x", "url": "https://a.example", "secret": "s"}]"#).is_err());
        let many: Vec<String> = (0..=MAX_ENDPOINTS)
            .map(|n| format!(r#"{{"id": "e{n}", "url": "https://a.example"}}"#))
            .collect();
        assert!(one(&format!("[{}]", many.join(","))).is_err());
        let long = format!(
            r#"[{{"id": "x", "url": "https://a.example/{}"}}]"#,
            "p".repeat(MAX_LIST_BYTES)
        );
        assert!(one(&long).unwrap_err()[0].contains("at most 2000"));
    }

    #[test]
    fn local_and_internal_names_are_refused_when_the_list_is_read() {
        for name in [
            "localhost",
            "LOCALHOST.",
            "api.localhost",
            "printer.local",
            "metadata.google.internal",
            "ip-10-0-0-1.ec2.internal",
            "intranet",
            "nas.home.arpa",
        ] {
            let list = format!(r#"[{{"id": "x", "url": "https://{name}/hook"}}]"#);
            let problems = one(&list).unwrap_err();
            assert!(
                problems[0].contains("local or internal name"),
                "{name}: {problems:?}"
            );
        }
        // Locally, plain http to localhost is the point.
        assert!(
            parse_endpoints(
                r#"[{"id": "x", "url": "http://localhost:8088/hook"}]"#,
                Schemes::LoopbackHttp
            )
            .is_ok()
        );
    }

    #[test]
    fn plain_http_is_for_loopback_in_a_local_run_only() {
        let local = r#"[{"id": "dev", "url": "http://127.0.0.1:9000/hook"}]"#;
        assert!(one(local).is_err());
        assert_eq!(
            parse_endpoints(local, Schemes::LoopbackHttp).unwrap()[0]
                .url
                .as_str(),
            "http://127.0.0.1:9000/hook"
        );
        assert!(
            parse_endpoints(
                r#"[{"id": "dev", "url": "http://192.168.1.5/hook"}]"#,
                Schemes::LoopbackHttp
            )
            .is_err()
        );
    }

    #[test]
    fn only_public_addresses_may_be_reached() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
            "::a9fe:a9fe",
            "::7f00:1",
            "64:ff9b:1::a00:1",
            "2002:a00:1::1",
            "2002:a9fe:a9fe::1",
            "fec0::1",
            "100::1",
            "2001::1",
            "2001:10::1",
            "2001:20::1",
            "3fff::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2a00:1450:4001::200e",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn a_failed_delivery_is_tried_eight_times_over_about_a_day() {
        let schedule = RetrySchedule::default();
        let delays: Vec<u64> = (1..=8)
            .map_while(|attempt| schedule.after(attempt))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(delays, [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000]);
        assert_eq!(schedule.after(8), None);
        assert_eq!(schedule.after(0), None);
        assert_eq!(schedule.tries(), 8);
        let total: u64 = delays.iter().sum();
        assert!((99_000..100_000).contains(&total), "{total} s");
    }

    #[test]
    fn a_retry_schedule_is_read_from_seconds_and_bad_figures_are_named() {
        let schedule = RetrySchedule::parse(" 1, 2,3 ").unwrap();
        assert_eq!(schedule.after(3), Some(Duration::from_secs(3)));
        assert_eq!(schedule.tries(), 4);
        assert_eq!(RetrySchedule::parse("").unwrap().tries(), 1);
        for bad in ["0", "1,,2", "soon", "86401"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
        let many = vec!["1"; MAX_RETRIES + 1].join(",");
        assert!(RetrySchedule::parse(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn a_breaker_opens_after_five_failures_in_a_row_and_cools_off_longer_after_each_failed_probe() {
        assert!(!Breaker::opens_at(4));
        assert!(Breaker::opens_at(5));
        let mut breaker = Breaker::opened(5, 1_000);
        assert!(!breaker.allows(1_000));
        assert!(!breaker.allows(30_999));
        assert!(!breaker.half_open(30_999));
        assert!(breaker.allows(31_000), "half-open once the cool-off passed");
        assert!(breaker.half_open(31_000));
        assert_eq!(
            Breaker::probe_until(31_000, Duration::from_secs(10)),
            46_000,
            "the request's timeout and the margin"
        );
        breaker = breaker.after_failed_probe(31_000);
        assert_eq!(breaker.open_until_ms, 31_000 + 60_000);
        assert_eq!(breaker.failures, 6);
        for _ in 0..20 {
            breaker = breaker.after_failed_probe(0);
        }
        assert_eq!(breaker.open_until_ms, 600_000, "at most ten minutes");
        // A breaker whose opening was never written probes as one opened.
        let lost = Breaker {
            failures: 5,
            ..Breaker::default()
        };
        assert!(lost.half_open(0));
        assert_eq!(lost.after_failed_probe(0).open_until_ms, 30_000);
        assert!(Breaker::default().allows(0));
        assert!(
            !Breaker {
                failures: 4,
                ..Breaker::default()
            }
            .half_open(0),
            "closed, not half-open"
        );
    }
}
