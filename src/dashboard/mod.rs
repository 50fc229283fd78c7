//! The web side: attendance dashboards, shared links, the Stats API, exports.
//!
//! Everything that is not an ingest route (`/p.gif`, `/api/event`,
//! `/js/script.js`, `/opt-out`, `/healthz`, `/readyz`, `/metrics`; see
//! [`is_ingest_path`]) is answered here:
//!
//! | route | what |
//! |---|---|
//! | `GET /login`, `POST /login`, `POST /logout` | operators' sessions |
//! | `GET /` | the sites the operator may read |
//! | `GET /<domain>` | a site's dashboard (`?period=…&f=dim:value&lang=ru`) |
//! | `GET /<domain>/export/<panel>.csv`, `/<domain>/export.zip` | exports (k-threshold applied) |
//! | `GET/POST /<domain>/shares`, `POST /<domain>/shares/<id>/revoke` | shared links |
//! | `GET/POST /share/<token>[/export…]` | a shared read-only view |
//! | `GET /api/v1/stats/…` | Plausible-compatible Stats API ([`api`]) |
//! | `GET /assets/…` | stylesheet, script, icon |
//!
//! Visitors never get a cookie. Operators get one, `hc_session` (HttpOnly,
//! SameSite=Strict, Secure behind TLS), holding a random token whose hash is
//! the key of their session row; people who unlocked a password-protected
//! shared link get `hc_share`, scoped to that link's path. Every POST needs
//! a same-origin `Origin`/`Referer` and a CSRF token: derived from the
//! session for operators' forms, a short-lived MAC for the login and share
//! password forms (which exist before any session).
//!
//! Numbers come from a [`source::StatsSource`]; this module never writes SQL
//! for statistics.

pub mod api;
pub mod assets;
pub mod chart;
pub mod countries;
pub mod engine;
pub mod export;
pub mod http;
pub mod i18n;
pub mod params;
pub mod source;
pub mod view;

use crate::auth::db::normalize_email;
use crate::auth::limit::LoginLimiter;
use crate::auth::secret::{self, FormKey};
use crate::auth::{AccessStore, AuthError, Session, Share, User};
use crate::clock::SharedClock;
use crate::config::{Config, normalize_domain};
use crate::stats::{Breakdown, Dimension, Interval, StatsRequest};
use bytes::Bytes;
use http::{Resp, field, html, redirect};
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, StatusCode};
use i18n::{Lang, Msg};
use params::View;
use source::{PanelSpec, Series, StatsSource, Totals, apply_k};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cookie of an operator's session.
pub const SESSION_COOKIE: &str = "hc_session";
/// Cookie of an unlocked password-protected shared link.
pub const SHARE_COOKIE: &str = "hc_share";
/// How long a login or share-password form stays valid.
const FORM_MAX_AGE: i64 = 2 * 3600;
/// How long an unlocked shared link stays unlocked.
const SHARE_SESSION: Duration = Duration::from_secs(24 * 3600);
/// Rows per breakdown in exports.
const EXPORT_ROWS: usize = 1000;

/// The ingest routes, which keep priority over everything here.
pub const INGEST_PATHS: &[&str] =
    &["/p.gif", "/api/event", "/js/script.js", "/opt-out", "/healthz", "/readyz", "/metrics"];

/// Is `path` answered by the ingest router?
pub fn is_ingest_path(path: &str) -> bool {
    INGEST_PATHS.contains(&path)
}

/// Everything the web side needs, shared by all connections.
pub struct Dashboard {
    pub config: Arc<Config>,
    pub access: AccessStore,
    pub stats: Arc<dyn StatsSource>,
    pub clock: SharedClock,
    pub limiter: LoginLimiter,
    forms: FormKey,
    last_purge: Mutex<Option<Instant>>,
}

/// A failure answered with a 500 page (logged, never shown in detail).
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Export(#[from] export::ExportError),
    #[error("background task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Who is asking.
struct Operator {
    user: User,
    /// Raw session token (for CSRF derivation and logout).
    token: String,
}

/// Per-request facts.
struct Ctx<'a> {
    peer: SocketAddr,
    headers: &'a HeaderMap,
    path: &'a str,
    query: &'a str,
    lang: Lang,
    view: View,
}

impl Ctx<'_> {
    fn https(&self, d: &Dashboard) -> bool {
        http::is_https(self.peer, self.headers, &d.config.privacy.trusted_proxies)
    }
    fn host(&self, d: &Dashboard) -> Option<String> {
        http::host(self.peer, self.headers, &d.config.privacy.trusted_proxies)
    }
    fn same_origin(&self, d: &Dashboard) -> bool {
        http::same_origin(self.headers, self.host(d).as_deref())
    }
    /// This URL with the other language.
    fn other_lang_href(&self) -> String {
        self.view.with_lang(self.lang.other()).href(self.path)
    }
}

impl Dashboard {
    pub fn new(
        config: Arc<Config>,
        db: clickhouse::Client,
        clock: SharedClock,
        stats: Arc<dyn StatsSource>,
    ) -> Result<Dashboard, AuthError> {
        Ok(Dashboard {
            access: AccessStore::new(db, clock.clone()),
            config,
            stats,
            clock,
            limiter: LoginLimiter::default(),
            forms: FormKey::generate()?,
            last_purge: Mutex::new(None),
        })
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    fn frame<'a>(&self, ctx: &Ctx, title: String, op: Option<&'a Operator>, csrf: Option<&'a str>) -> view::Frame<'a> {
        let home = match ctx.view.lang {
            Some(l) => format!("/?lang={}", l.code()),
            None => "/".into(),
        };
        view::Frame {
            lang: ctx.lang,
            title,
            user: op.map(|o| o.user.email.as_str()),
            csrf,
            other_lang_href: ctx.other_lang_href(),
            home,
        }
    }

    fn not_found(&self, ctx: &Ctx, op: Option<&Operator>) -> Resp {
        let csrf = op.map(|o| secret::csrf_token(&o.token));
        let f = self.frame(ctx, Msg::NotFound.text(ctx.lang).into(), op, csrf.as_deref());
        html(StatusCode::NOT_FOUND, view::page(&f, view::message(ctx.lang, Msg::NotFound, Msg::NotFoundText, &f.home)))
    }

    fn error_page(&self, ctx: &Ctx, e: &WebError) -> Resp {
        tracing::error!(error = %e, "dashboard request failed");
        let f = self.frame(ctx, Msg::Error.text(ctx.lang).into(), None, None);
        html(
            StatusCode::INTERNAL_SERVER_ERROR,
            view::page(&f, view::message(ctx.lang, Msg::Error, Msg::ErrorText, "/")),
        )
    }

    /// The operator whose session cookie came with the request.
    async fn operator(&self, headers: &HeaderMap) -> Result<Option<Operator>, AuthError> {
        let Some(token) = http::cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let Some(Session::User(email)) = self.access.session(token).await? else {
            return Ok(None);
        };
        Ok(self.access.user(&email).await?.map(|user| Operator { user, token: token.to_string() }))
    }

    /// Configured sites `user` may read.
    fn readable_sites(&self, user: &User) -> Vec<String> {
        self.config.sites.iter().map(|s| s.domain.clone()).filter(|d| user.can_read(d)).collect()
    }

    fn maybe_purge_sessions(&self) {
        let mut last = self.last_purge.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(3600)) {
            return;
        }
        *last = Some(Instant::now());
        let access = self.access.clone();
        tokio::spawn(async move {
            if let Err(e) = access.purge_expired_sessions().await {
                tracing::warn!(error = %e, "could not purge expired dashboard sessions");
            }
        });
    }
}

/// Answer one request that is not an ingest route.
pub async fn handle<B>(dash: Arc<Dashboard>, peer: SocketAddr, req: Request<B>) -> Resp
where
    B: http::ReqBody,
{
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let view = View::parse(&query);
    let accept = parts.headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    let lang = view.lang.unwrap_or_else(|| Lang::negotiate(accept));
    let ctx = Ctx { peer, headers: &parts.headers, path: &path, query: &query, lang, view };
    match route(&dash, &ctx, &parts.method, body).await {
        Ok(r) => r,
        Err(e) => dash.error_page(&ctx, &e),
    }
}

async fn route<B>(d: &Dashboard, ctx: &Ctx<'_>, method: &Method, body: B) -> Result<Resp, WebError>
where
    B: http::ReqBody,
{
    let segments: Vec<String> = ctx
        .path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = matches!(*method, Method::GET | Method::HEAD);
    let post = *method == Method::POST;
    match seg.as_slice() {
        ["assets", file] if get => Ok(serve_asset(file)),
        ["favicon.ico"] => Ok(redirect(&format!("/assets/icon.svg?v={}", view::asset_version()))),
        ["login"] if get => login_page(d, ctx).await,
        ["login"] if post => login(d, ctx, body).await,
        ["logout"] if post => logout(d, ctx, body).await,
        ["api", "v1", "stats", rest @ ..] if get => Ok(stats_api(d, ctx, rest).await),
        ["share", token, rest @ ..] => shared(d, ctx, method, token, rest, body).await,
        [""] if get => index(d, ctx).await,
        [domain, rest @ ..] => site_route(d, ctx, method, domain, rest, body).await,
        _ => Ok(http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")),
    }
}

fn serve_asset(file: &str) -> Resp {
    match file {
        "dashboard.css" => http::asset("text/css; charset=utf-8", Bytes::from(assets::CSS.as_str())),
        "dashboard.js" => http::asset("text/javascript; charset=utf-8", Bytes::from_static(assets::JS.as_bytes())),
        "icon.svg" => http::asset("image/svg+xml", Bytes::from_static(assets::ICON.as_bytes())),
        _ => http::text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Unauthenticated: to the login page, coming back here afterwards.
fn to_login(ctx: &Ctx) -> Resp {
    let next = if ctx.query.is_empty() { ctx.path.to_string() } else { format!("{}?{}", ctx.path, ctx.query) };
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("next", &next);
    if let Some(l) = ctx.view.lang {
        q.append_pair("lang", l.code());
    }
    redirect(&format!("/login?{}", q.finish()))
}

async fn index(d: &Dashboard, ctx: &Ctx<'_>) -> Result<Resp, WebError> {
    let Some(op) = d.operator(ctx.headers).await? else {
        return Ok(to_login(ctx));
    };
    let sites = d.readable_sites(&op.user);
    if let [only] = sites.as_slice() {
        return Ok(redirect(&ctx.view.href(&format!("/{only}"))));
    }
    let csrf = secret::csrf_token(&op.token);
    let f = d.frame(ctx, Msg::Sites.text(ctx.lang).into(), Some(&op), Some(&csrf));
    Ok(html(StatusCode::OK, view::page(&f, view::sites(ctx.lang, &sites, &ctx.view))))
}

// ---- login ---------------------------------------------------------------

fn login_form(d: &Dashboard, ctx: &Ctx, status: StatusCode, next: &str, error: Option<Msg>, email: &str) -> Resp {
    let token = d.forms.issue("login", d.now());
    let f = d.frame(ctx, Msg::SignIn.text(ctx.lang).into(), None, None);
    html(status, view::page(&f, view::login(ctx.lang, &token, http::safe_next(next), error, email)))
}

async fn login_page(d: &Dashboard, ctx: &Ctx<'_>) -> Result<Resp, WebError> {
    let q = api::Query::parse(ctx.query);
    let next = http::safe_next(q.get("next").unwrap_or("/"));
    if d.operator(ctx.headers).await?.is_some() {
        return Ok(redirect(next));
    }
    Ok(login_form(d, ctx, StatusCode::OK, next, None, ""))
}

async fn login<B>(d: &Dashboard, ctx: &Ctx<'_>, body: B) -> Result<Resp, WebError>
where
    B: http::ReqBody,
{
    let Some(form) = http::read_form(body).await else {
        return Ok(http::text(StatusCode::BAD_REQUEST, "bad form\n"));
    };
    let (email, password, next) =
        (normalize_email(field(&form, "email")), field(&form, "password").to_string(), field(&form, "next"));
    if !ctx.same_origin(d) || !d.forms.check(field(&form, "t"), "login", d.now(), FORM_MAX_AGE) {
        return Ok(login_form(d, ctx, StatusCode::FORBIDDEN, next, Some(Msg::FormExpired), &email));
    }
    if d.limiter.check(&email).is_err() {
        return Ok(login_form(d, ctx, StatusCode::TOO_MANY_REQUESTS, next, Some(Msg::TooManyAttempts), &email));
    }
    let user = d.access.user(&email).await?;
    let phc = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_default();
    let ok = tokio::task::spawn_blocking(move || secret::verify_password(&password, &phc)).await?;
    let Some(user) = user.filter(|_| ok) else {
        d.limiter.failed(&email);
        tracing::info!("dashboard login failed");
        return Ok(login_form(d, ctx, StatusCode::UNAUTHORIZED, next, Some(Msg::BadLogin), &email));
    };
    d.limiter.succeeded(&email);
    let ttl = d.config.dashboard.session;
    let token = d.access.create_session(&Session::User(user.email.clone()), ttl).await?;
    d.maybe_purge_sessions();
    let mut r = redirect(http::safe_next(next));
    if let Some(c) = http::set_cookie(SESSION_COOKIE, &token, "/", ttl.as_secs(), ctx.https(d)) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// Check an operator's form: same origin and the session's CSRF token.
async fn operator_form<B>(
    d: &Dashboard,
    ctx: &Ctx<'_>,
    body: B,
) -> Result<Result<(Operator, Vec<(String, String)>), Resp>, WebError>
where
    B: http::ReqBody,
{
    let Some(form) = http::read_form(body).await else {
        return Ok(Err(http::text(StatusCode::BAD_REQUEST, "bad form\n")));
    };
    let Some(op) = d.operator(ctx.headers).await? else {
        return Ok(Err(to_login(ctx)));
    };
    let expected = secret::csrf_token(&op.token);
    if !ctx.same_origin(d) || !secret::ct_eq(field(&form, "csrf").as_bytes(), expected.as_bytes()) {
        tracing::debug!("dashboard form refused: CSRF check failed");
        return Ok(Err(http::text(StatusCode::FORBIDDEN, "forbidden: the form did not come from this dashboard\n")));
    }
    Ok(Ok((op, form)))
}

async fn logout<B>(d: &Dashboard, ctx: &Ctx<'_>, body: B) -> Result<Resp, WebError>
where
    B: http::ReqBody,
{
    let (op, _) = match operator_form(d, ctx, body).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    d.access.revoke_session(&op.token).await?;
    let mut r = redirect(&format!("/login?lang={}", ctx.lang.code()));
    if let Some(c) = http::set_cookie(SESSION_COOKIE, "", "/", 0, ctx.https(d)) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

// ---- dashboards ----------------------------------------------------------

/// The configured site named by a path segment.
fn site_of(d: &Dashboard, segment: &str) -> Option<String> {
    d.config.site(segment).map(|s| s.domain.clone())
}

async fn site_route<B>(
    d: &Dashboard,
    ctx: &Ctx<'_>,
    method: &Method,
    domain: &str,
    rest: &[&str],
    body: B,
) -> Result<Resp, WebError>
where
    B: http::ReqBody,
{
    let op = d.operator(ctx.headers).await?;
    // A path that names no configured site is simply not found; the
    // dashboards of configured sites ask for a login first.
    let Some(site) = site_of(d, domain) else {
        return Ok(d.not_found(ctx, op.as_ref()));
    };
    let Some(op) = op else {
        return Ok(to_login(ctx));
    };
    // Sites the user may not read look like unknown ones.
    if !op.user.can_read(&site) {
        return Ok(d.not_found(ctx, Some(&op)));
    }
    if normalize_domain(domain) != domain && rest.is_empty() {
        return Ok(redirect(&ctx.view.href(&format!("/{site}"))));
    }
    let base = format!("/{site}");
    let get = matches!(*method, Method::GET | Method::HEAD);
    match (rest, get, *method == Method::POST) {
        ([], true, _) => {
            let others: Vec<String> = d.readable_sites(&op.user).into_iter().filter(|s| *s != site).collect();
            let csrf = secret::csrf_token(&op.token);
            let dash = dashboard_data(d, ctx, &site, &base, false, others).await;
            let f = d.frame(ctx, site.clone(), Some(&op), Some(&csrf));
            Ok(html(StatusCode::OK, view::page(&f, view::dashboard(&dash))))
        }
        (["export.zip"], true, _) => export_zip(d, ctx, &site).await,
        (["export", file], true, _) => export_csv(d, ctx, &site, file).await,
        (["shares"], true, _) => shares_page(d, ctx, &op, &site, None).await,
        (["shares"], _, true) => {
            let (op, form) = match operator_form(d, ctx, body).await? {
                Ok(x) => x,
                Err(r) => return Ok(r),
            };
            let password = field(&form, "password").to_string();
            let hash = if password.is_empty() {
                String::new()
            } else {
                tokio::task::spawn_blocking(move || secret::hash_password(&password)).await??
            };
            let label: String = field(&form, "label").chars().take(200).collect();
            let (_, token) = d.access.create_share(&site, &hash, &label, &op.user.email).await?;
            let scheme = if ctx.https(d) { "https" } else { "http" };
            let link = format!("{scheme}://{}/share/{token}", ctx.host(d).unwrap_or_default());
            shares_page(d, ctx, &op, &site, Some(&link)).await
        }
        (["shares", id, "revoke"], _, true) => {
            if let Err(r) = operator_form(d, ctx, body).await? {
                return Ok(r);
            }
            if d.access.share(id).await?.is_some_and(|s| s.site == site) {
                d.access.revoke_share(id).await?;
            }
            Ok(redirect(&format!("/{site}/shares?lang={}", ctx.lang.code())))
        }
        _ => Ok(d.not_found(ctx, Some(&op))),
    }
}

async fn shares_page(
    d: &Dashboard,
    ctx: &Ctx<'_>,
    op: &Operator,
    site: &str,
    created: Option<&str>,
) -> Result<Resp, WebError> {
    let shares = d.access.shares(Some(site)).await?;
    let csrf = secret::csrf_token(&op.token);
    let f = d.frame(ctx, format!("{} · {site}", Msg::SharedLinks.text(ctx.lang)), Some(op), Some(&csrf));
    Ok(html(StatusCode::OK, view::page(&f, view::shares(ctx.lang, site, &csrf, &shares, created, &ctx.view))))
}

/// The request for `site` as the view asks.
fn request(d: &Dashboard, ctx: &Ctx, site: &str) -> StatsRequest {
    StatsRequest {
        site: site.to_string(),
        range: ctx.view.period.resolve(d.clock.now()),
        filters: ctx.view.filters.clone(),
        prop: None,
    }
}

/// The panel's property key: declared, or chosen in the URL.
fn panel_prop(spec: &PanelSpec, view: &View) -> Option<String> {
    spec.prop.clone().or_else(|| (spec.dimension == Dimension::Prop).then(|| view.prop.clone()).flatten())
}

/// Run the panels' breakdowns concurrently.
async fn breakdowns(
    d: &Dashboard,
    req: &StatsRequest,
    panels: &[PanelSpec],
    view: &View,
    rows: Option<usize>,
    k: Option<u64>,
) -> Vec<Option<Breakdown>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, spec) in panels.iter().enumerate() {
        let prop = panel_prop(spec, view);
        if spec.dimension == Dimension::Prop && prop.is_none() {
            continue;
        }
        let (stats, spec) = (d.stats.clone(), spec.clone());
        let req = StatsRequest { prop, ..req.clone() };
        let limit = rows.unwrap_or(spec.limit);
        set.spawn(async move { (i, stats.panel_breakdown(&req, &spec, limit, k).await) });
    }
    let mut out = vec![None; panels.len()];
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, Ok(b))) => out[i] = Some(k.map_or(b.clone(), |k| apply_k(b, k))),
            Ok((i, Err(e))) => tracing::error!(error = %e, panel = %panels[i].id, "breakdown failed"),
            Err(e) => tracing::error!(error = %e, "breakdown task failed"),
        }
    }
    out
}

/// Gather everything a dashboard page shows.
async fn dashboard_data<'a>(
    d: &Dashboard,
    ctx: &'a Ctx<'_>,
    site: &'a str,
    base: &'a str,
    shared: bool,
    other_sites: Vec<String>,
) -> view::Dash<'a> {
    let req = request(d, ctx, site);
    let k = shared.then(|| d.config.dashboard.k_for(site));
    let panels = d.stats.panels(site);
    let interval = Interval::for_range(&req.range);
    let (totals, series, live, rows) = tokio::join!(
        d.stats.aggregate(&req),
        d.stats.timeseries(&req, interval),
        d.stats.realtime_visitors(site),
        breakdowns(d, &req, &panels, &ctx.view, None, k),
    );
    let log = |what: &str, e: &crate::stats::StatsError| tracing::error!(error = %e, what, "dashboard query failed");
    let totals = totals.map_err(|e| log("aggregate", &e)).ok();
    let series: Option<Series> = series.map_err(|e| log("timeseries", &e)).ok();
    let live = live.map_err(|e| log("realtime", &e)).ok();
    let suppressed = suppress(k, &ctx.view, totals.as_ref());
    view::Dash {
        lang: ctx.lang,
        site,
        base,
        view: &ctx.view,
        range: req.range,
        totals,
        series,
        live,
        panels: panels.into_iter().zip(rows).collect(),
        shared,
        k,
        suppressed,
        other_sites,
    }
}

/// With a k-threshold, a filtered view of fewer than k visitors shows
/// nothing: its numbers would describe a handful of people.
fn suppress(k: Option<u64>, view: &View, totals: Option<&Totals>) -> bool {
    match (k, totals) {
        (Some(k), Some(t)) => !view.filters.is_empty() && t.current.visitors < k,
        (Some(_), None) => !view.filters.is_empty(),
        _ => false,
    }
}

// ---- exports -------------------------------------------------------------

fn export_name(site: &str, ctx: &Ctx, d: &Dashboard) -> String {
    let r = ctx.view.period.resolve(d.clock.now());
    format!("{site}_{}_{}", params::format_date(r.from), params::format_date(r.to))
}

async fn export_zip(d: &Dashboard, ctx: &Ctx<'_>, site: &str) -> Result<Resp, WebError> {
    let req = request(d, ctx, site);
    let k = d.config.dashboard.k_for(site);
    let panels = d.stats.panels(site);
    let interval = Interval::for_range(&req.range);
    let (totals, series, rows) = tokio::join!(
        d.stats.aggregate(&req),
        d.stats.timeseries(&req, interval),
        breakdowns(d, &req, &panels, &ctx.view, Some(EXPORT_ROWS), Some(k)),
    );
    let totals = totals.map_err(|e| tracing::error!(error = %e, "export aggregate failed")).ok();
    let hidden = suppress(Some(k), &ctx.view, totals.as_ref());
    let mut files = vec![("aggregate.csv".to_string(), export::aggregate_csv(totals.as_ref().filter(|_| !hidden))?)];
    if !hidden && let Ok(s) = series {
        files.push(("timeseries.csv".into(), export::timeseries_csv(&s.current)?));
    }
    for (spec, b) in panels.iter().zip(rows) {
        if let Some(b) = b {
            files
                .push((format!("{}.csv", spec.id), export::breakdown_csv(&b, panel_prop(spec, &ctx.view).as_deref())?));
        }
    }
    let name = export_name(site, ctx, d);
    Ok(http::download("application/zip", &format!("{name}.zip"), export::zip(&files)?))
}

async fn export_csv(d: &Dashboard, ctx: &Ctx<'_>, site: &str, file: &str) -> Result<Resp, WebError> {
    let Some(id) = file.strip_suffix(".csv") else {
        return Ok(d.not_found(ctx, None));
    };
    let panels = d.stats.panels(site);
    let Some(spec) = panels.iter().find(|p| p.id == id) else {
        return Ok(d.not_found(ctx, None));
    };
    let req = request(d, ctx, site);
    let k = d.config.dashboard.k_for(site);
    let b = breakdowns(d, &req, std::slice::from_ref(spec), &ctx.view, Some(EXPORT_ROWS), Some(k)).await;
    let Some(Some(b)) = b.into_iter().next() else {
        return Ok(http::text(StatusCode::SERVICE_UNAVAILABLE, "the breakdown could not be computed\n"));
    };
    let csv = export::breakdown_csv(&b, panel_prop(spec, &ctx.view).as_deref())?;
    Ok(http::download("text/csv; charset=utf-8", &format!("{}_{id}.csv", export_name(site, ctx, d)), csv))
}

// ---- shared links --------------------------------------------------------

async fn shared<B>(
    d: &Dashboard,
    ctx: &Ctx<'_>,
    method: &Method,
    token: &str,
    rest: &[&str],
    body: B,
) -> Result<Resp, WebError>
where
    B: http::ReqBody,
{
    let Some(share) = d.access.share_by_token(token).await? else {
        return Ok(d.not_found(ctx, None));
    };
    let Some(site) = site_of(d, &share.site) else {
        return Ok(d.not_found(ctx, None));
    };
    let base = format!("/share/{token}");
    if !share.password_hash.is_empty() {
        if *method == Method::POST && rest.is_empty() {
            return unlock_share(d, ctx, &share, &base, body).await;
        }
        let unlocked = match http::cookie(ctx.headers, SHARE_COOKIE) {
            Some(t) => d.access.session(t).await? == Some(Session::Share(share.id.clone())),
            None => false,
        };
        if !unlocked {
            return Ok(share_password_form(d, ctx, &share, &base, StatusCode::UNAUTHORIZED, None));
        }
    }
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Ok(http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"));
    }
    match rest {
        [] => {
            let dash = dashboard_data(d, ctx, &site, &base, true, Vec::new()).await;
            let mut f = d.frame(ctx, site.clone(), None, None);
            f.home = ctx.view.without_filters().href(&base);
            Ok(html(StatusCode::OK, view::page(&f, view::dashboard(&dash))))
        }
        ["export.zip"] => export_zip(d, ctx, &site).await,
        ["export", file] => export_csv(d, ctx, &site, file).await,
        _ => Ok(d.not_found(ctx, None)),
    }
}

fn share_password_form(
    d: &Dashboard,
    ctx: &Ctx,
    share: &Share,
    base: &str,
    status: StatusCode,
    error: Option<Msg>,
) -> Resp {
    let token = d.forms.issue(&format!("share:{}", share.id), d.now());
    let mut f = d.frame(ctx, Msg::SharePasswordTitle.text(ctx.lang).into(), None, None);
    f.home = base.to_string();
    let action = ctx.view.href(base);
    html(status, view::page(&f, view::share_password(ctx.lang, &action, &token, error)))
}

async fn unlock_share<B>(d: &Dashboard, ctx: &Ctx<'_>, share: &Share, base: &str, body: B) -> Result<Resp, WebError>
where
    B: http::ReqBody,
{
    let Some(form) = http::read_form(body).await else {
        return Ok(http::text(StatusCode::BAD_REQUEST, "bad form\n"));
    };
    let purpose = format!("share:{}", share.id);
    if !ctx.same_origin(d) || !d.forms.check(field(&form, "t"), &purpose, d.now(), FORM_MAX_AGE) {
        return Ok(share_password_form(d, ctx, share, base, StatusCode::FORBIDDEN, Some(Msg::FormExpired)));
    }
    // The same limiter as logins, keyed by the share.
    if d.limiter.check(&purpose).is_err() {
        return Ok(share_password_form(d, ctx, share, base, StatusCode::TOO_MANY_REQUESTS, Some(Msg::TooManyAttempts)));
    }
    let (password, phc) = (field(&form, "password").to_string(), share.password_hash.clone());
    if !tokio::task::spawn_blocking(move || secret::verify_password(&password, &phc)).await? {
        d.limiter.failed(&purpose);
        return Ok(share_password_form(d, ctx, share, base, StatusCode::UNAUTHORIZED, Some(Msg::BadLogin)));
    }
    d.limiter.succeeded(&purpose);
    let token = d.access.create_session(&Session::Share(share.id.clone()), SHARE_SESSION).await?;
    let mut r = redirect(&ctx.view.href(base));
    if let Some(c) = http::set_cookie(SHARE_COOKIE, &token, base, SHARE_SESSION.as_secs(), ctx.https(d)) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

// ---- Stats API -----------------------------------------------------------

async fn stats_api(d: &Dashboard, ctx: &Ctx<'_>, rest: &[&str]) -> Resp {
    let err = |status: StatusCode, msg: &str| http::json(status, &serde_json::json!({ "error": msg }));
    let q = api::Query::parse(ctx.query);
    let Some(key) = ctx
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
    else {
        return err(
            StatusCode::UNAUTHORIZED,
            "Missing API key. Please use a valid Headcount API key as a Bearer Token.",
        );
    };
    let Some(site_id) = q.get("site_id").filter(|s| !s.is_empty()) else {
        return err(
            StatusCode::BAD_REQUEST,
            "Missing site ID. Please provide the required site_id parameter with your request.",
        );
    };
    let user = match d.access.api_key_user(key).await {
        Ok(Some(email)) => d.access.user(&email).await,
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    let user = match user {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "API key lookup failed");
            return err(StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable");
        }
    };
    // A wrong key, an unknown site and a site the key's user may not read
    // all get the same answer.
    let Some(site) = user.and_then(|u| site_of(d, site_id).filter(|s| u.can_read(s))) else {
        return err(
            StatusCode::UNAUTHORIZED,
            "Invalid API key or site ID. Please make sure you're using a valid API key with access to the site you've requested.",
        );
    };
    let today = d.clock.now().date();
    let result = match rest {
        ["realtime", "visitors"] => match d.stats.realtime_visitors(&site).await {
            Ok(n) => Ok(serde_json::json!(n)),
            Err(e) => Err(api::ApiError(e.to_string())),
        },
        [call @ ("aggregate" | "timeseries" | "breakdown")] => match api::stats_request(&site, &q, today) {
            Err(e) => Err(e),
            Ok((req, period)) => match *call {
                "aggregate" => api::aggregate(d.stats.as_ref(), &req, &q).await,
                "timeseries" => api::timeseries(d.stats.as_ref(), &req, &period, &q).await,
                _ => api::breakdown(d.stats.as_ref(), &req, &q).await,
            },
        },
        _ => return err(StatusCode::NOT_FOUND, "Not found"),
    };
    match result {
        Ok(v) => http::json(StatusCode::OK, &v),
        Err(e) => err(StatusCode::BAD_REQUEST, &e.0),
    }
}

#[cfg(test)]
mod tests;
