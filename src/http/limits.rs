//! Per-client rate limits on the requests an abuser would repeat: registrations, code
//! verifications (and new codes), status lookups and staff sign-in.
//!
//! Each limited route belongs to one [`RateClass`]; each class has its own budget per
//! client address ([`RateLimit`], such as `20/h`), configured at start. A request over
//! budget is answered `429 Too Many Requests` with `Retry-After`, before its body is
//! read: a problem document on the API, a short page in the reader's language on the
//! HTML forms.
//!
//! The algorithm is GCRA (the "generic cell rate algorithm", a token bucket kept as a
//! single time per key): a budget of `n` per `period` lets a client make `n` requests
//! at once, then one more every `period / n`. Time comes from the application's
//! [`Clock`](crate::jobs::clock::Clock), so tests move it by hand.
//!
//! Budgets are kept in memory, per instance: with several instances behind a load
//! balancer, a client can make up to that many times the budget (see
//! `docs/operations.md`). IPv6 clients are counted by their /64 network, which is what
//! one household or phone usually gets.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Mutex;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};

use super::error::ApiError;
use super::state::AppState;

/// The kinds of request that are limited, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    /// Registering an entry (API and registration page).
    Registration,
    /// Checking a verification code, or asking for a new one.
    Code,
    /// Reading an entry with its access code (status, convocation, attestation).
    Status,
    /// Signing in to the staff pages.
    SignIn,
}

impl RateClass {
    pub const ALL: [Self; 4] = [Self::Registration, Self::Code, Self::Status, Self::SignIn];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Code => "code",
            Self::Status => "status",
            Self::SignIn => "sign_in",
        }
    }
}

/// Which routes are limited, by method and route template, and whether the route is a
/// page (answered with HTML) or part of the API (answered with a problem document).
const LIMITED_ROUTES: &[(&str, &str, RateClass, bool)] = &[
    // the API
    (
        "POST",
        "/api/v1/windows/{id}/entries",
        RateClass::Registration,
        false,
    ),
    (
        "POST",
        "/api/v1/entries/{entry_id}/verify",
        RateClass::Code,
        false,
    ),
    (
        "POST",
        "/api/v1/entries/{entry_id}/resend-code",
        RateClass::Code,
        false,
    ),
    (
        "GET",
        "/api/v1/entries/{entry_id}",
        RateClass::Status,
        false,
    ),
    (
        "GET",
        "/api/v1/entries/{entry_id}/convocation",
        RateClass::Status,
        false,
    ),
    (
        "GET",
        "/api/v1/entries/{entry_id}/convocation.html",
        RateClass::Status,
        false,
    ),
    (
        "GET",
        "/api/v1/entries/{entry_id}/attestation",
        RateClass::Status,
        false,
    ),
    (
        "GET",
        "/api/v1/entries/{entry_id}/attestation.html",
        RateClass::Status,
        false,
    ),
    // the pages' forms
    (
        "POST",
        "/windows/{id}/register",
        RateClass::Registration,
        true,
    ),
    ("POST", "/entry/verify", RateClass::Code, true),
    ("POST", "/entry/resend-code", RateClass::Code, true),
    ("POST", "/entry", RateClass::Status, true),
    ("POST", "/entry/convocation", RateClass::Status, true),
    ("POST", "/entry/attestation", RateClass::Status, true),
    ("POST", "/staff/sign-in", RateClass::SignIn, true),
];

/// The class of a request, by its method and matched route template, and whether it is
/// a page.
pub fn classify(method: &Method, route: &str) -> Option<(RateClass, bool)> {
    // HEAD is answered by the GET handler, so it counts as GET
    let method = if method == Method::HEAD {
        Method::GET.as_str()
    } else {
        method.as_str()
    };
    LIMITED_ROUTES
        .iter()
        .find(|(m, r, _, _)| *m == method && *r == route)
        .map(|&(_, _, class, page)| (class, page))
}

/// Every limited route, for tests and documentation: `(method, template, class, page)`.
pub fn limited_routes() -> &'static [(&'static str, &'static str, RateClass, bool)] {
    LIMITED_ROUTES
}

/// A budget: `requests` per `period`. Written `20/h`, `10/15min`, `5/s`, `100/d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub period: Duration,
}

/// A budget setting: a [`RateLimit`], or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSetting(pub Option<RateLimit>);

impl RateSetting {
    pub const OFF: Self = Self(None);

    pub fn per(requests: u32, period: Duration) -> Self {
        Self(Some(RateLimit { requests, period }))
    }
}

impl FromStr for RateSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(Self::OFF);
        }
        let wrong = || {
            format!(
                "`{text}`: write a number of requests per period, such as 20/h, 10/15min, 5/s or 100/d, or `off`"
            )
        };
        let (count, period) = text.split_once('/').ok_or_else(wrong)?;
        let requests: u32 = count.trim().parse().map_err(|_| wrong())?;
        let period = period.trim();
        let digits = period
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(wrong)?;
        let times: i64 = if digits == 0 {
            1
        } else {
            period[..digits].parse().map_err(|_| wrong())?
        };
        let unit = match &period[digits..] {
            "s" | "sec" | "second" => Duration::seconds(1),
            "min" | "minute" => Duration::minutes(1),
            "h" | "hour" => Duration::hours(1),
            "d" | "day" => Duration::days(1),
            _ => return Err(wrong()),
        };
        if requests == 0 || times == 0 || times > 1000 {
            return Err(wrong());
        }
        Ok(Self::per(
            requests,
            unit * i32::try_from(times).map_err(|_| wrong())?,
        ))
    }
}

impl fmt::Display for RateSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(limit) => {
                let seconds = limit.period.num_seconds();
                let (count, unit) = [(86_400, "d"), (3600, "h"), (60, "min"), (1, "s")]
                    .into_iter()
                    .find(|(size, _)| seconds % size == 0)
                    .map_or((seconds, "s"), |(size, unit)| (seconds / size, unit));
                if count == 1 {
                    write!(f, "{}/{unit}", limit.requests)
                } else {
                    write!(f, "{}/{count}{unit}", limit.requests)
                }
            }
        }
    }
}

/// The budgets of every class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub registration: RateSetting,
    pub code: RateSetting,
    pub status: RateSetting,
    pub sign_in: RateSetting,
}

impl RateLimits {
    /// No limit at all (tests that register many entries from one address, the demo).
    pub const OFF: Self = Self {
        registration: RateSetting::OFF,
        code: RateSetting::OFF,
        status: RateSetting::OFF,
        sign_in: RateSetting::OFF,
    };

    /// The same budget for every class.
    pub fn all(setting: RateSetting) -> Self {
        Self {
            registration: setting,
            code: setting,
            status: setting,
            sign_in: setting,
        }
    }

    pub fn of(&self, class: RateClass) -> Option<RateLimit> {
        match class {
            RateClass::Registration => self.registration.0,
            RateClass::Code => self.code.0,
            RateClass::Status => self.status.0,
            RateClass::SignIn => self.sign_in.0,
        }
    }
}

/// Keys above this count make the limiter forget the keys whose budget is full again.
const PRUNE_ABOVE: usize = 10_000;

/// The in-memory budgets of every client, per class.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    /// For each (class, client): the "theoretical arrival time" of GCRA. A client is
    /// within budget while it is at most `period - period / requests` ahead of now.
    state: Mutex<HashMap<(RateClass, IpAddr), DateTime<Utc>>>,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Counts one request of `client` in `class` at `now`: `Ok` if it is within budget,
    /// else `Err(seconds)` to wait before the next one is accepted.
    pub fn check(&self, class: RateClass, client: IpAddr, now: DateTime<Utc>) -> Result<(), i64> {
        let Some(limit) = self.limits.of(class) else {
            return Ok(());
        };
        let interval = limit.period / i32::try_from(limit.requests).unwrap_or(i32::MAX);
        let tolerance = limit.period - interval;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.len() > PRUNE_ABOVE {
            state.retain(|_, tat| *tat > now);
        }
        let tat = state.get(&(class, client)).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > tolerance {
            let wait = ahead - tolerance;
            // whole seconds, rounded up, at least one
            let seconds = (wait.num_milliseconds() + 999) / 1000;
            return Err(seconds.max(1));
        }
        state.insert((class, client), tat + interval);
        Ok(())
    }
}

/// Where the client's address comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAddress {
    /// A header set by a trusted reverse proxy (`X-Forwarded-For`, `X-Real-IP`); without
    /// it, the address of the TCP connection.
    pub header: Option<HeaderName>,
}

impl ClientAddress {
    /// The client of a request: the last address of the trusted header (the one the
    /// proxy itself added), else the connection's address, else (requests made in
    /// process, without a connection) the unspecified address, one shared key.
    pub fn of(&self, headers: &HeaderMap, connection: Option<SocketAddr>) -> IpAddr {
        let from_header = self.header.as_ref().and_then(|name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .filter_map(parse_address)
                .next_back()
        });
        let address = from_header
            .or_else(|| connection.map(|c| c.ip()))
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        network_key(address)
    }
}

/// One address of a forwarding header: `203.0.113.7`, `203.0.113.7:4711`,
/// `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64 network (an
/// IPv4 address mapped into IPv6 counts as the IPv4 address).
fn network_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The middleware: counts requests to limited routes and refuses those over budget.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>() else {
        return next.run(request).await;
    };
    let Some((class, page)) = classify(request.method(), route.as_str()) else {
        return next.run(request).await;
    };
    let connection = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let client = state.client_address.of(request.headers(), connection);
    match state.limiter.check(class, client, state.clock.now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            // the class only: the address is personal data
            tracing::info!(rate.class = class.as_str(), "rate limit reached");
            state.metrics.rate_limited(class.as_str());
            if page {
                let (parts, _) = request.into_parts();
                super::pages::too_many_requests(super::pages::request_lang(&parts), retry_after)
            } else {
                ApiError::TooManyRequests {
                    detail: "too many requests of this kind from your address; wait before trying again",
                    retry_after: Some(retry_after),
                }
                .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 8));

    #[test]
    fn settings_parse_and_refuse_nonsense() {
        assert_eq!("20/h".parse(), Ok(RateSetting::per(20, Duration::hours(1))));
        assert_eq!(
            " 10/15min ".parse(),
            Ok(RateSetting::per(10, Duration::minutes(15)))
        );
        assert_eq!("5/s".parse(), Ok(RateSetting::per(5, Duration::seconds(1))));
        assert_eq!(
            "100/2d".parse(),
            Ok(RateSetting::per(100, Duration::days(2)))
        );
        assert_eq!("OFF".parse(), Ok(RateSetting::OFF));
        for text in ["20/h", "10/15min", "5/s", "100/2d", "7/90s", "off"] {
            assert_eq!(text.parse::<RateSetting>().unwrap().to_string(), text);
        }
        for bad in [
            "", "20", "0/h", "20/0h", "20/week", "-1/h", "x/h", "20/h/2", "20/",
        ] {
            assert!(bad.parse::<RateSetting>().is_err(), "{bad}");
        }
    }

    #[test]
    fn routes_are_classified_by_method_and_template() {
        let entry = "/api/v1/entries/{entry_id}";
        assert_eq!(
            classify(&Method::GET, entry),
            Some((RateClass::Status, false))
        );
        assert_eq!(
            classify(&Method::HEAD, entry),
            Some((RateClass::Status, false))
        );
        assert_eq!(classify(&Method::POST, entry), None);
        assert_eq!(
            classify(&Method::POST, "/staff/sign-in"),
            Some((RateClass::SignIn, true))
        );
        assert_eq!(classify(&Method::GET, "/staff/sign-in"), None);
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        // 3 per minute: 3 at once, then one every 20 seconds
        let limiter = RateLimiter::new(RateLimits::all(RateSetting::per(3, Duration::minutes(1))));
        for _ in 0..3 {
            assert_eq!(limiter.check(RateClass::Code, A, t(0)), Ok(()));
        }
        assert_eq!(limiter.check(RateClass::Code, A, t(0)), Err(20));
        assert_eq!(limiter.check(RateClass::Code, A, t(19)), Err(1));
        assert_eq!(limiter.check(RateClass::Code, A, t(20)), Ok(()));
        assert_eq!(limiter.check(RateClass::Code, A, t(20)), Err(20));
        // a full period later, the whole burst is back
        for _ in 0..3 {
            assert_eq!(limiter.check(RateClass::Code, A, t(100)), Ok(()));
        }
    }

    #[test]
    fn clients_and_classes_have_their_own_budgets() {
        let limiter = RateLimiter::new(RateLimits {
            sign_in: RateSetting::OFF,
            ..RateLimits::all(RateSetting::per(1, Duration::hours(1)))
        });
        assert_eq!(limiter.check(RateClass::Status, A, t(0)), Ok(()));
        assert_eq!(limiter.check(RateClass::Status, A, t(0)), Err(3600));
        assert_eq!(limiter.check(RateClass::Status, B, t(0)), Ok(()));
        assert_eq!(limiter.check(RateClass::Registration, A, t(0)), Ok(()));
        for _ in 0..10 {
            assert_eq!(limiter.check(RateClass::SignIn, A, t(0)), Ok(()));
        }
    }

    #[test]
    fn full_budgets_are_forgotten_when_many_keys_are_kept() {
        let limiter = RateLimiter::new(RateLimits::all(RateSetting::per(2, Duration::seconds(2))));
        for i in 0..=PRUNE_ABOVE as u32 {
            limiter
                .check(RateClass::Status, IpAddr::from(i.to_be_bytes()), t(0))
                .unwrap();
        }
        limiter.check(RateClass::Status, A, t(10)).unwrap();
        assert_eq!(limiter.state.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_client_address() {
        let socket: SocketAddr = "198.51.100.4:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "10.0.0.1, 203.0.113.7".parse().unwrap());
        // no trusted header: the connection, whatever the request claims
        let direct = ClientAddress::default();
        assert_eq!(direct.of(&headers, Some(socket)), socket.ip());
        assert_eq!(direct.of(&headers, None), IpAddr::from([0, 0, 0, 0]));
        // a trusted proxy: the last address, the one the proxy added
        let proxied = ClientAddress {
            header: Some(HeaderName::from_static("x-forwarded-for")),
        };
        assert_eq!(proxied.of(&headers, Some(socket)), A);
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(proxied.of(&headers, Some(socket)), socket.ip());
        headers.insert(
            "x-forwarded-for",
            "[2001:db8:1:2:3::9]:443".parse().unwrap(),
        );
        assert_eq!(
            proxied.of(&headers, Some(socket)),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-forwarded-for", "::ffff:203.0.113.7".parse().unwrap());
        assert_eq!(proxied.of(&headers, Some(socket)), A);
    }
}
