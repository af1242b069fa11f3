//! vasttile-tileserver: the layer functions of a vasttile database over HTTP.
//!
//! - `GET /index.json` (pg_tileserv style) and `GET /catalog` (Martin style): the layers;
//! - `GET /{layer}`: TileJSON 3.0 of a layer;
//! - `GET /{layer}/{z}/{x}/{y}.png` and `.../{y}@2x.png` (512 px): a tile, the query string
//!   passed to the layer function as its `query_params` (`?colormap=viridis&normalize=log`);
//! - `GET /legend/{layer}`: the layer's legend in the requested style;
//! - `GET /map/`: a MapLibre page over every layer.
//!
//! Tiles carry a strong ETag (If-None-Match -> 304), a configurable Cache-Control and CORS
//! headers. Tiles of layers with a version (`vasttile.layer_version`) are kept in a bounded
//! in-memory cache under that version, and their ETag is made of it: a 304 or a cached tile
//! costs no database work, and a change is never served stale once the database has told the
//! server of it (`versions`). At most `--concurrency` tiles are drawn at once (requests beyond wait), each under
//! `--statement-timeout-ms`. Bad z/x/y or parameters are 4xx with a short fixed message (at most
//! naming the bad parameter, capped and without control characters: a request is never echoed);
//! URLs over 4 KB are 414 and control characters or invalid UTF-8 in the path or query 400, before
//! the database is asked. Database error messages go to the log only: the client gets a fixed
//! text (400 for invalid parameter values, 504 on the statement timeout, 500 otherwise).

mod catalog;
mod versions;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use catalog::{layers_from_rows, Layer, DISCOVERY_SQL};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tower_http::cors::CorsLayer;
use tower_http::services::ServeDir;

struct Config {
    listen: String,
    database: String,
    web_dir: String,
    maplibre_dir: String,
    cache_control: String,
    concurrency: usize,
    statement_timeout_ms: u64,
    cache_mb: u64,
}

impl Config {
    fn from_args() -> Config {
        let mut c = Config {
            listen: "127.0.0.1:8787".into(),
            database: "host=localhost user=postgres dbname=vasttile_demo".into(),
            web_dir: "web".into(),
            maplibre_dir: "web/node_modules/maplibre-gl/dist".into(),
            cache_control: "public, max-age=60".into(),
            concurrency: 8,
            statement_timeout_ms: 10_000,
            cache_mb: 64,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let value = args
                .get(i + 1)
                .cloned()
                .unwrap_or_else(|| usage(&format!("{} needs a value", args[i])));
            match args[i].as_str() {
                "--listen" => c.listen = value,
                "--database" => c.database = value,
                "--web" => c.web_dir = value,
                "--maplibre" => c.maplibre_dir = value,
                "--cache-control" => c.cache_control = value,
                "--concurrency" => {
                    c.concurrency = value
                        .parse()
                        .unwrap_or_else(|_| usage("--concurrency takes a number"))
                }
                "--cache-mb" => {
                    c.cache_mb = value
                        .parse()
                        .unwrap_or_else(|_| usage("--cache-mb takes a number"))
                }
                "--statement-timeout-ms" => {
                    c.statement_timeout_ms = value
                        .parse()
                        .unwrap_or_else(|_| usage("--statement-timeout-ms takes a number"))
                }
                other => usage(&format!("unknown option {other}")),
            }
            i += 2;
        }
        c
    }
}

fn usage(why: &str) -> ! {
    eprintln!(
        "vasttile-tileserver: {why}\n\
         options: --listen ADDR  --database 'host=... port=... user=... dbname=...'  --web DIR  --maplibre DIR\n\
         \x20        --cache-control VALUE  --concurrency N  --statement-timeout-ms N  --cache-mb N"
    );
    std::process::exit(2)
}

struct AppState {
    pool: Pool,
    layers: RwLock<Arc<BTreeMap<String, Layer>>>,
    tiles: Semaphore,
    cache_control: HeaderValue,
    statement_timeout_ms: u64,
    versions: Arc<versions::Versions>,
    cache: Option<versions::TileCache>,
}

type Shared = Arc<AppState>;

#[tokio::main]
async fn main() {
    let cfg = Config::from_args();
    let mut pg: tokio_postgres::Config = cfg
        .database
        .parse()
        .unwrap_or_else(|e| usage(&format!("--database: {e}")));
    pg.application_name("vasttile-tileserver");
    pg.options(format!("-c statement_timeout={}", cfg.statement_timeout_ms));
    let listener_pg = pg.clone();
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(cfg.concurrency)
        .wait_timeout(Some(Duration::from_millis(
            cfg.statement_timeout_ms + 5_000,
        )))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .expect("pool configuration is valid");
    let state = Arc::new(AppState {
        pool,
        layers: RwLock::new(Arc::new(BTreeMap::new())),
        tiles: Semaphore::new(cfg.concurrency),
        cache_control: HeaderValue::from_str(&cfg.cache_control)
            .unwrap_or_else(|_| usage("--cache-control is not a header value")),
        statement_timeout_ms: cfg.statement_timeout_ms,
        versions: Arc::default(),
        cache: versions::tile_cache(cfg.cache_mb),
    });
    if let Err(e) = refresh_layers(&state).await {
        eprintln!("vasttile-tileserver: cannot list layers: {e}");
        std::process::exit(1);
    }
    let watched = state.clone();
    tokio::spawn(versions::listen(
        state.versions.clone(),
        listener_pg,
        move || {
            let layers = watched.layers.read().expect("not poisoned").clone();
            layers
                .values()
                .map(|l| (l.schema.clone(), l.function.clone(), l.id.clone()))
                .collect()
        },
    ));
    let app = app(state.clone(), &cfg);
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .unwrap_or_else(|e| usage(&format!("cannot listen on {}: {e}", cfg.listen)));
    let layers = state.layers.read().expect("not poisoned").len();
    println!(
        "vasttile-tileserver: {layers} layers at http://{}/index.json, map at http://{}/map/",
        cfg.listen, cfg.listen
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .expect("server runs");
}

/// The routes, behind the request checks (`check_request`).
fn app(state: Shared, cfg: &Config) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/map/") }))
        .route("/index.json", get(index))
        .route("/catalog", get(index))
        .route("/health", get(|| async { "ok" }))
        .route("/legend/{layer}", get(legend))
        .route("/{layer}", get(tilejson))
        .route("/{layer}/{z}/{x}/{y}", get(tile))
        .nest_service("/map/maplibre-gl", ServeDir::new(&cfg.maplibre_dir))
        .nest_service("/map", ServeDir::new(&cfg.web_dir))
        .layer(middleware::from_fn(check_request))
        .layer(CorsLayer::permissive())
        .with_state(state)
}

/// The longest request target (path and query) served; longer ones are 414.
const MAX_URL_BYTES: usize = 4096;
/// The most characters of client input an error message repeats (`mention`).
const MAX_MENTION_CHARS: usize = 48;

/// Client input for an error message: control characters dropped, at most `MAX_MENTION_CHARS`.
fn mention(s: &str) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_MENTION_CHARS + 1)
        .collect();
    if out.chars().count() > MAX_MENTION_CHARS {
        out = out.chars().take(MAX_MENTION_CHARS).collect();
        out.push_str("...");
    }
    out
}

/// Percent-decoding (`+` is a space in query strings); malformed escapes stay as they are.
fn percent_decode(s: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

/// Text of a decoded URL part: UTF-8 without control characters (NUL, newlines, escapes...).
fn clean_text(bytes: Vec<u8>) -> Option<String> {
    String::from_utf8(bytes)
        .ok()
        .filter(|s| !s.chars().any(char::is_control))
}

/// Why a request target is refused before any handler (and the database) sees it: 414 when it
/// is longer than `MAX_URL_BYTES`, 400 when its path or a query parameter's name or value,
/// decoded, is not UTF-8 or holds a control character.
fn check_uri(uri: &Uri) -> Result<(), (StatusCode, String)> {
    let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    if target.len() > MAX_URL_BYTES {
        return Err((
            StatusCode::URI_TOO_LONG,
            format!("the URL is longer than {MAX_URL_BYTES} bytes"),
        ));
    }
    if clean_text(percent_decode(uri.path(), false)).is_none() {
        return Err((
            StatusCode::BAD_REQUEST,
            "the URL path must be UTF-8 without control characters".into(),
        ));
    }
    for pair in uri.query().unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(name) = clean_text(percent_decode(name, true)) else {
            return Err((
                StatusCode::BAD_REQUEST,
                "query parameter names must be UTF-8 without control characters".into(),
            ));
        };
        if clean_text(percent_decode(value, true)).is_none() {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "query parameter \"{}\" must be UTF-8 without control characters",
                    mention(&name)
                ),
            ));
        }
    }
    Ok(())
}

async fn check_request(request: Request, next: Next) -> Response {
    match check_uri(request.uri()) {
        Ok(()) => next.run(request).await,
        Err((status, why)) => error(status, &why),
    }
}

/// An error with its causes ("db error: FATAL: database \"x\" does not exist"), for the log.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

async fn refresh_layers(state: &AppState) -> Result<(), String> {
    let client = state.pool.get().await.map_err(|e| describe(&e))?;
    let rows = client
        .query(DISCOVERY_SQL, &[])
        .await
        .map_err(|e| describe(&e))?;
    let rows = rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let found = layers_from_rows(rows);
    let mut layers = state.layers.write().expect("not poisoned");
    let same = |a: &Layer, b: &Layer| a.schema == b.schema && a.function == b.function;
    if !layers.keys().eq(found.keys()) {
        // A layer id that now names another function: its versions and tiles are not that
        // function's. (New layers only need their versions read.)
        if layers
            .iter()
            .any(|(id, l)| found.get(id).is_some_and(|f| !same(l, f)))
        {
            state.versions.changed();
        } else {
            state.versions.reread();
        }
    } else if layers.iter().any(|(id, l)| !same(l, &found[id])) {
        state.versions.changed();
    }
    *layers = Arc::new(found);
    Ok(())
}

/// The layer named `id`, looking the layers up again once when it is not known (new layers
/// appear without a restart).
async fn find_layer(state: &AppState, id: &str) -> Result<Layer, Response> {
    let known = state.layers.read().expect("not poisoned").get(id).cloned();
    if let Some(l) = known {
        return Ok(l);
    }
    refresh_layers(state).await.map_err(|e| {
        eprintln!("layer discovery failed: {e}");
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not reachable",
        )
    })?;
    let found = state.layers.read().expect("not poisoned").get(id).cloned();
    found.ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            &format!("no layer named \"{}\"", mention(id)),
        )
    })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

async fn index(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = refresh_layers(&state).await {
        eprintln!("layer discovery failed: {e}");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not reachable",
        );
    }
    let base = base_url(&headers);
    let layers = state.layers.read().expect("not poisoned").clone();
    let list: Vec<Value> = layers
        .values()
        .map(|l| {
            json!({
                "id": l.id, "schema": l.schema, "function": l.function, "description": l.description,
                "kind": l.kind, "style": l.style, "retina": l.retina(),
                "tilejson": format!("{base}/{}", l.id),
                "tiles": format!("{base}/{}/{{z}}/{{x}}/{{y}}.png", l.id),
                "legend": format!("{base}/legend/{}", l.id),
            })
        })
        .collect();
    Json(Value::Array(list)).into_response()
}

async fn tilejson(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id = id.strip_suffix(".json").unwrap_or(&id).to_string();
    let layer = match find_layer(&state, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let base = base_url(&headers);
    Json(json!({
        "tilejson": "3.0.0",
        "name": layer.id,
        "description": layer.description,
        "tiles": [format!("{base}/{}/{{z}}/{{x}}/{{y}}.png", layer.id)],
        "minzoom": 0,
        "maxzoom": 22,
        "format": "png",
        "vasttile": {"kind": layer.kind, "style": layer.style, "legend": format!("{base}/legend/{}", layer.id)},
    }))
    .into_response()
}

/// Query parameters as the JSON object a layer function takes: numbers stay numbers
/// (`?radius=2`), everything else is a string.
fn params_json(query: &HashMap<String, String>) -> Map<String, Value> {
    query
        .iter()
        .map(|(k, v)| {
            let value = if let Ok(n) = v.parse::<i64>() {
                json!(n)
            } else {
                match v.parse::<f64>() {
                    Ok(n) if n.is_finite() => json!(n),
                    _ => Value::String(v.clone()),
                }
            };
            (k.clone(), value)
        })
        .collect()
}

/// Parse z, x and `{y}`, `{y}.png` or `{y}@2x.png`; 4xx text when they are not a tile.
fn parse_tile(z: &str, x: &str, y: &str) -> Result<(i32, i32, i32, bool), String> {
    let (y, retina) = if let Some(y) = y.strip_suffix("@2x.png") {
        (y, true)
    } else {
        (y.strip_suffix(".png").unwrap_or(y), false)
    };
    let num = |what: &str, v: &str| {
        v.parse::<i32>()
            .map_err(|_| format!("{what} must be an integer, got \"{}\"", mention(v)))
    };
    let (z, x, y) = (num("z", z)?, num("x", x)?, num("y", y)?);
    let max_z = if retina { 22 } else { 23 };
    if !(0..=max_z).contains(&z) {
        return Err(format!("z must be between 0 and {max_z}, got {z}"));
    }
    let n = 1i64 << z;
    for (what, v) in [("x", x), ("y", y)] {
        if !(0..n).contains(&(v as i64)) {
            return Err(format!(
                "{what} must be between 0 and {} at zoom {z}, got {v}",
                n - 1
            ));
        }
    }
    Ok((z, x, y, retina))
}

/// What a database error means for the client: its own input (400), too slow (504), or our
/// fault (500). The database's message is logged, never sent: a 400 names at most the query
/// parameter it is about (`bad_parameter`).
fn db_error(
    e: &tokio_postgres::Error,
    query: &HashMap<String, String>,
    statement_timeout_ms: u64,
) -> Response {
    let Some(db) = e.as_db_error() else {
        eprintln!("database error: {}", describe(e));
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not reachable",
        );
    };
    let code = db.code().code();
    eprintln!(
        "database error {code}: {}{}",
        db.message().escape_debug(),
        db.detail()
            .map(|d| format!(" ({})", d.escape_debug()))
            .unwrap_or_default()
    );
    let (status, text) = db_error_text(code, db.message(), query, statement_timeout_ms);
    error(status, &text)
}

/// The status and fixed text for a database error (SQLSTATE `code`, `message`).
fn db_error_text(
    code: &str,
    message: &str,
    query: &HashMap<String, String>,
    statement_timeout_ms: u64,
) -> (StatusCode, String) {
    if code.starts_with("22") {
        let text = match bad_parameter(message, query) {
            Some(name) => format!("invalid value for query parameter \"{}\"", mention(name)),
            None => "invalid query parameters for this layer".into(),
        };
        return (StatusCode::BAD_REQUEST, text);
    }
    if code == "57014" {
        return (
            StatusCode::GATEWAY_TIMEOUT,
            format!("the tile took longer than the server's limit of {statement_timeout_ms} ms"),
        );
    }
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error drawing the tile".into(),
    )
}

/// The client's query parameter a vasttile error message is about: `style option "KEY": ...`
/// or `NAME must ...`. The name returned is the client's own, not text from the database.
fn bad_parameter<'q>(message: &str, query: &'q HashMap<String, String>) -> Option<&'q str> {
    let subject = match message.strip_prefix("style option \"") {
        Some(rest) => rest.split('"').next().unwrap_or_default(),
        None => message.split([' ', ':']).next().unwrap_or_default(),
    };
    query
        .keys()
        .find(|k| !k.is_empty() && k.as_str() == subject)
        .map(String::as_str)
}

/// Whether the request's If-None-Match names `etag`.
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// A tile, or 304 when the client has it: `etag` is the version's, or None to hash the bytes.
fn png_response(
    state: &AppState,
    png: Bytes,
    etag: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let etag = etag.unwrap_or_else(|| format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&png)));
    let mut response = if none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "image/png")], Body::from(png)).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is a header value"),
    );
    h.insert(header::CACHE_CONTROL, state.cache_control.clone());
    response
}

async fn tile(
    State(state): State<Shared>,
    Path((id, z, x, y)): Path<(String, String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (z, x, y, retina) = match parse_tile(&z, &x, &y) {
        Ok(t) => t,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    let layer = match find_layer(&state, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut params = params_json(&query);
    if retina {
        if !layer.retina() {
            return error(
                StatusCode::NOT_FOUND,
                &format!("layer \"{}\" has no 512-px (@2x) tiles", mention(&id)),
            );
        }
        params.insert("size".into(), json!(512));
    }
    // A versioned layer: answered without the database when the client or the cache has it.
    let key = state
        .versions
        .of(&layer.id)
        .map(|v| versions::TileKey::new(&layer.id, v, (z, x, y, retina), &query));
    let etag = key.as_ref().map(versions::TileKey::etag);
    if let (Some(key), Some(etag)) = (&key, &etag) {
        if none_match(&headers, etag) {
            return png_response(&state, Bytes::new(), Some(etag.clone()), &headers);
        }
        if let Some(png) = state.cache.as_ref().and_then(|c| c.get(key)) {
            return png_response(&state, png, Some(etag.clone()), &headers);
        }
    }
    let Ok(_permit) = state.tiles.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("no database connection: {}", describe(&e));
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no database connection available",
            );
        }
    };
    let statement = match client.prepare_cached(&layer.tile_sql()).await {
        Ok(s) => s,
        Err(e) => return db_error(&e, &query, state.statement_timeout_ms),
    };
    let params = Value::Object(params);
    match client.query_one(&statement, &[&z, &x, &y, &params]).await {
        Ok(row) => {
            let png: Option<Vec<u8>> = row.get(0);
            let png = match png {
                Some(p) => Bytes::from(p),
                None => match empty_png(&client, retina).await {
                    Ok(p) => Bytes::from(p),
                    Err(e) => return db_error(&e, &query, state.statement_timeout_ms),
                },
            };
            // Drawn at this version or a newer one (whose notification is on its way): either
            // way not older than the key says.
            if let (Some(cache), Some(key)) = (&state.cache, key) {
                cache.insert(key, png.clone());
            }
            png_response(&state, png, etag, &headers)
        }
        Err(e) => db_error(&e, &query, state.statement_timeout_ms),
    }
}

/// A transparent tile for empty ones: MapLibre then has an image for every tile it asked for.
async fn empty_png(
    client: &deadpool_postgres::Client,
    retina: bool,
) -> Result<Vec<u8>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached("SELECT vasttile.empty_tile($1)")
        .await?;
    let size: i32 = if retina { 512 } else { 256 };
    client
        .query_one(&statement, &[&size])
        .await
        .map(|r| r.get(0))
}

async fn legend(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let layer = match find_layer(&state, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let Some(kind) = layer.kind.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            &format!(
                "layer \"{}\" has no legend (not a vasttile layer)",
                mention(&id)
            ),
        );
    };
    let mut params = params_json(&query);
    let size = |k: &str, default: i32, params: &mut Map<String, Value>| -> i32 {
        params
            .remove(k)
            .and_then(|v| v.as_f64())
            .map_or(default, |v| v as i32)
    };
    let width = size("width", 256, &mut params);
    let height = size("height", 12, &mut params);
    let mut style = layer.style.as_object().cloned().unwrap_or_default();
    style.extend(params);
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("no database connection: {}", describe(&e));
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no database connection available",
            );
        }
    };
    let style = Value::Object(style);
    let result = client
        .query_one(
            "SELECT vasttile.legend($1, $2::jsonb, $3, $4)",
            &[&kind, &style, &width, &height],
        )
        .await;
    match result {
        Ok(row) => png_response(
            &state,
            Bytes::from(row.get::<_, Vec<u8>>(0)),
            None,
            &headers,
        ),
        Err(e) => db_error(&e, &query, state.statement_timeout_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_checked_before_the_database() {
        assert_eq!(parse_tile("3", "2", "5.png"), Ok((3, 2, 5, false)));
        assert_eq!(parse_tile("3", "2", "5@2x.png"), Ok((3, 2, 5, true)));
        assert_eq!(parse_tile("3", "2", "5"), Ok((3, 2, 5, false)));
        assert!(parse_tile("3", "8", "5.png")
            .unwrap_err()
            .contains("x must be between 0 and 7"));
        assert!(parse_tile("24", "0", "0").is_err());
        assert!(parse_tile("23", "0", "0@2x.png").is_err());
        assert!(parse_tile("a", "0", "0")
            .unwrap_err()
            .contains("z must be an integer"));
        assert!(parse_tile("1", "-1", "0").is_err());
    }

    /// The app over a database that is never reachable, knowing one layer: a request that gets
    /// past the checks and asks for a connection is a 503.
    fn test_app() -> Router {
        let pg: tokio_postgres::Config = "host=/nonexistent-vasttile-test port=1 user=x dbname=x"
            .parse()
            .unwrap();
        let manager = Manager::from_config(
            pg,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(1)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .unwrap();
        let layers = layers_from_rows(vec![(
            "public".into(),
            "zip_heat".into(),
            r#"{"content_type": "image/png", "vasttile": {"kind": "heat"}}"#.into(),
        )]);
        let state = Arc::new(AppState {
            pool,
            layers: RwLock::new(Arc::new(layers)),
            tiles: Semaphore::new(1),
            cache_control: HeaderValue::from_static("no-cache"),
            statement_timeout_ms: 1000,
            versions: Arc::default(),
            cache: None,
        });
        let cfg = Config {
            listen: String::new(),
            database: String::new(),
            web_dir: "/nonexistent-vasttile-test".into(),
            maplibre_dir: "/nonexistent-vasttile-test".into(),
            cache_control: String::new(),
            concurrency: 1,
            statement_timeout_ms: 1000,
            cache_mb: 0,
        };
        app(state, &cfg)
    }

    async fn get(uri: &str) -> (StatusCode, String) {
        use tower::ServiceExt;
        let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
        let response = test_app().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_long_query_is_414_and_not_echoed() {
        let value = "a".repeat(10 * 1024);
        let (status, body) = get(&format!("/zip_heat/4/4/6.png?colormap={value}")).await;
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        assert!(body.len() < 200, "{} bytes: {body}", body.len());
        assert!(!body.contains(&"a".repeat(64)), "{body}");
        // Also for a name of a parameter, and under the limit (the handler's own 400).
        let (status, body) = get(&format!("/zip_heat/4/4/6.png?{value}=1")).await;
        assert_eq!(status, StatusCode::URI_TOO_LONG);
        assert!(
            body.len() < 200 && !body.contains(&"a".repeat(64)),
            "{body}"
        );
        let z = "a".repeat(3000);
        let (status, body) = get(&format!("/zip_heat/{z}/0/0.png")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.len() < 200 && !body.contains(&"a".repeat(64)),
            "{body}"
        );
        assert!(body.contains("z must be an integer"), "{body}");
    }

    #[tokio::test]
    async fn control_characters_are_400_before_the_database() {
        for uri in [
            "/zip_heat/4/4/6.png?%00=1",
            "/zip_heat/4/4/6.png?colormap=%00",
            "/zip_heat/4/4/6.png?colormap=fire%0Aevil",
            "/zip_heat/4/4/6.png?colormap=%1B%5B31m",
            "/zip_heat/4/4/6.png?colormap=%7F",
            "/zip_heat/4/4/6.png?colormap=%C2%85",
            "/zip_heat/4/4/6.png?colormap=%FF",
            "/zip_heat%00/4/4/6.png",
            "/legend/zip_heat?%00=1",
            "/index.json?%00=1",
        ] {
            let (status, body) = get(uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert!(body.len() < 200, "{uri}: {body}");
            for db_text in [
                "Unicode",
                "escape sequence",
                "cannot be converted",
                "\\u0000",
            ] {
                assert!(!body.contains(db_text), "{uri}: {body}");
            }
            let json: Value = serde_json::from_str(&body).unwrap();
            assert!(!json["error"]
                .as_str()
                .unwrap()
                .chars()
                .any(char::is_control));
        }
        // A clean request gets past the checks (and to the unreachable database).
        let (status, _) = get("/zip_heat/4/4/6.png?colormap=fire&normalize=log").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, _) = get("/zip_heat/4/4/6.png?colormap=caf%C3%A9+x").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn database_messages_stay_in_the_log() {
        let long = "b".repeat(3000);
        let query = HashMap::from([
            ("colormap".to_string(), long.clone()),
            ("radius".to_string(), "999".to_string()),
        ]);
        let cases = [
            ("22P05", "unsupported Unicode escape sequence".to_string()),
            (
                "22023",
                format!("style option \"colormap\": unknown colormap \"{long}\""),
            ),
            ("22023", "radius must be at most 64, got 999".to_string()),
            (
                "22023",
                "style option \"other\": unknown option".to_string(),
            ),
            (
                "42P01",
                "relation \"vasttile_no_such_table\" does not exist".to_string(),
            ),
            ("XX000", format!("select * from {long}")),
            (
                "57014",
                "canceling statement due to statement timeout".to_string(),
            ),
        ];
        let mut texts = vec![];
        for (code, message) in &cases {
            let (status, text) = db_error_text(code, message, &query, 2000);
            assert!(text.len() < 120, "{text}");
            assert!(
                !text.contains(message.as_str()) && !text.contains("bbbb"),
                "{text}"
            );
            for db_text in ["Unicode", "unknown", "relation", "select", "canceling"] {
                assert!(!text.contains(db_text), "{text}");
            }
            texts.push((status.as_u16(), text));
        }
        assert_eq!(
            texts[0],
            (400, "invalid query parameters for this layer".into())
        );
        assert_eq!(
            texts[1],
            (400, "invalid value for query parameter \"colormap\"".into())
        );
        assert_eq!(
            texts[2],
            (400, "invalid value for query parameter \"radius\"".into())
        );
        assert_eq!(
            texts[3],
            (400, "invalid query parameters for this layer".into())
        );
        assert_eq!(texts[4], (500, "internal error drawing the tile".into()));
        assert_eq!(texts[5], (500, "internal error drawing the tile".into()));
        assert_eq!(texts[6].0, 504);
        assert!(texts[6].1.contains("2000 ms"));
    }

    #[test]
    fn mentions_are_short_and_clean() {
        assert_eq!(mention("colormap"), "colormap");
        assert_eq!(mention("a\u{0}b\nc\u{1b}[31m"), "abc[31m");
        let m = mention(&"x".repeat(10_000));
        assert_eq!(m, format!("{}...", "x".repeat(MAX_MENTION_CHARS)));
        assert_eq!(percent_decode("a%20b+c%2", true), b"a b c%2");
        assert_eq!(percent_decode("a+%zz%41", false), b"a+%zzA");
        assert!(clean_text(percent_decode("%00", true)).is_none());
        assert!(clean_text(percent_decode("%E2%82%AC", true)).is_some());
    }

    #[test]
    fn numbers_stay_numbers() {
        let q = HashMap::from([
            ("radius".to_string(), "2.5".to_string()),
            ("size".to_string(), "512".to_string()),
            ("colormap".to_string(), "viridis".to_string()),
        ]);
        let p = params_json(&q);
        assert_eq!(p["radius"], json!(2.5));
        assert_eq!(p["size"].as_i64(), Some(512));
        assert_eq!(p["colormap"], json!("viridis"));
    }
}
