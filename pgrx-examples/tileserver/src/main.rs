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
//! headers. At most `--concurrency` tiles are drawn at once (requests beyond wait), each under
//! `--statement-timeout-ms`. Bad z/x/y or parameters are 4xx with a clear message; server-side
//! failures are 5xx that never carry SQL text.

mod catalog;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
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
         \x20        --cache-control VALUE  --concurrency N  --statement-timeout-ms N"
    );
    std::process::exit(2)
}

struct AppState {
    pool: Pool,
    layers: RwLock<Arc<BTreeMap<String, Layer>>>,
    tiles: Semaphore,
    cache_control: HeaderValue,
    statement_timeout_ms: u64,
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
    });
    if let Err(e) = refresh_layers(&state).await {
        eprintln!("vasttile-tileserver: cannot list layers: {e}");
        std::process::exit(1);
    }
    let app = Router::new()
        .route("/", get(|| async { Redirect::temporary("/map/") }))
        .route("/index.json", get(index))
        .route("/catalog", get(index))
        .route("/health", get(|| async { "ok" }))
        .route("/legend/{layer}", get(legend))
        .route("/{layer}", get(tilejson))
        .route("/{layer}/{z}/{x}/{y}", get(tile))
        .nest_service("/map/maplibre-gl", ServeDir::new(&cfg.maplibre_dir))
        .nest_service("/map", ServeDir::new(&cfg.web_dir))
        .layer(CorsLayer::permissive())
        .with_state(state.clone());
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
    *state.layers.write().expect("not poisoned") = Arc::new(layers_from_rows(rows));
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
    found.ok_or_else(|| error(StatusCode::NOT_FOUND, &format!("no layer named \"{id}\"")))
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
            .map_err(|_| format!("{what} must be an integer, got \"{v}\""))
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

/// What a database error means for the client: its own input (4xx, with vasttile's message,
/// which names the parameter and never holds SQL), too slow (504), or our fault (500, logged).
fn db_error(e: &tokio_postgres::Error, statement_timeout_ms: u64) -> Response {
    let Some(db) = e.as_db_error() else {
        eprintln!("database error: {}", describe(e));
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not reachable",
        );
    };
    let code = db.code().code();
    if code.starts_with("22") {
        return error(StatusCode::BAD_REQUEST, db.message());
    }
    if code == "57014" {
        return error(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("the tile took longer than the server's limit of {statement_timeout_ms} ms"),
        );
    }
    eprintln!("database error {code}: {}", db.message());
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error drawing the tile",
    )
}

fn png_response(state: &AppState, png: Vec<u8>, headers: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&png));
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
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
                &format!("layer \"{id}\" has no 512-px (@2x) tiles"),
            );
        }
        params.insert("size".into(), json!(512));
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
        Err(e) => return db_error(&e, state.statement_timeout_ms),
    };
    let params = Value::Object(params);
    match client.query_one(&statement, &[&z, &x, &y, &params]).await {
        Ok(row) => {
            let png: Option<Vec<u8>> = row.get(0);
            let png = match png {
                Some(p) => p,
                None => match empty_png(&client, retina).await {
                    Ok(p) => p,
                    Err(e) => return db_error(&e, state.statement_timeout_ms),
                },
            };
            png_response(&state, png, &headers)
        }
        Err(e) => db_error(&e, state.statement_timeout_ms),
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
            &format!("layer \"{id}\" has no legend (not a vasttile layer)"),
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
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no database connection available",
            )
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
        Ok(row) => png_response(&state, row.get(0), &headers),
        Err(e) => db_error(&e, state.statement_timeout_ms),
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
