//! Layer versions and the hot-tile cache.
//!
//! The database gives each layer a version (`vasttile.layer_version`) that changes in the
//! transaction that changes what the layer draws, and says so on the channel `vasttile_data`.
//! One connection listens there: at a notification the versions are forgotten at once (tiles are
//! then drawn, not cached, and not answered 304 without drawing) and read again. Tiles of a
//! versioned layer are cached under (layer, version, tile, style) and carry an ETag made of the
//! same, so an `If-None-Match` of the current version is a 304 without the database, and a tile
//! of an older version is never served once its change is known.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

/// The channel the extension notifies when a table, pyramid or layer changes.
pub const CHANNEL: &str = "vasttile_data";

/// A cached tile: which layer, at which version, which tile and size, in which style (the
/// request's query parameters but `v`, sorted).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TileKey {
    pub layer: String,
    pub version: i64,
    pub z: i32,
    pub x: i32,
    pub y: i32,
    pub retina: bool,
    pub query: Vec<(String, String)>,
}

impl TileKey {
    pub fn new(
        layer: &str,
        version: i64,
        (z, x, y, retina): (i32, i32, i32, bool),
        query: &HashMap<String, String>,
    ) -> TileKey {
        // `v` is the client's version in the URL (cache busting): not part of the tile.
        let query: BTreeMap<&String, &String> =
            query.iter().filter(|(k, _)| k.as_str() != "v").collect();
        TileKey {
            layer: layer.to_string(),
            version,
            z,
            x,
            y,
            retina,
            query: query
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The strong ETag of this tile at this version: known before the tile is drawn.
    pub fn etag(&self) -> String {
        let mut text = format!(
            "{}\u{0}{}\u{0}{}/{}/{}/{}",
            self.layer, self.version, self.z, self.x, self.y, self.retina
        );
        for (k, v) in &self.query {
            text.push('\u{0}');
            text.push_str(k);
            text.push('=');
            text.push_str(v);
        }
        format!("\"v{:016x}\"", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }
}

/// Tile bytes weigh their length (and a little for the key), so the cache holds at most its
/// capacity in bytes.
#[derive(Clone)]
pub struct ByteWeighter;

impl quick_cache::Weighter<TileKey, Bytes> for ByteWeighter {
    fn weight(&self, key: &TileKey, png: &Bytes) -> u64 {
        let query: usize = key.query.iter().map(|(k, v)| k.len() + v.len() + 48).sum();
        (png.len() + key.layer.len() + query + 96) as u64
    }
}

pub type TileCache = quick_cache::sync::Cache<TileKey, Bytes, ByteWeighter>;

/// A cache of `megabytes` (None when 0: every tile is drawn).
pub fn tile_cache(megabytes: u64) -> Option<TileCache> {
    (megabytes > 0).then(|| {
        let bytes = megabytes << 20;
        // About 20 KB a tile, for the cache's first sizing.
        TileCache::with_weighter((bytes / 20_000).max(16) as usize, bytes, ByteWeighter)
    })
}

/// What the server knows of the layers' versions.
#[derive(Default)]
pub struct Versions {
    /// Versioned layers by id; None while a change is being read or nobody listens.
    known: RwLock<Option<Arc<HashMap<String, i64>>>>,
    /// Counts the notifications: a reading started before one is not kept.
    generation: AtomicU64,
    /// Wakes the listener to read the versions again (a notification, new layers).
    wake: Notify,
}

impl Versions {
    /// The layer's version, when it has one and it is known now.
    pub fn of(&self, layer: &str) -> Option<i64> {
        let known = self.known.read().expect("not poisoned");
        known.as_ref().and_then(|m| m.get(layer).copied())
    }

    /// Something changed: forget every version until they are read again.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.known.write().expect("not poisoned") = None;
        self.wake.notify_one();
    }

    /// Read the versions again (new layers were found).
    pub fn reread(&self) {
        self.wake.notify_one();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Keep `read` if no change was heard since `generation`.
    fn set(&self, generation: u64, read: HashMap<String, i64>) -> bool {
        let mut known = self.known.write().expect("not poisoned");
        if self.generation() != generation {
            return false;
        }
        *known = Some(Arc::new(read));
        true
    }
}

/// Listen on `CHANNEL` for as long as the server runs, reconnecting after a lost connection;
/// `layers` gives the (schema, function, id) of every layer when the versions are read.
pub async fn listen(
    versions: Arc<Versions>,
    pg: tokio_postgres::Config,
    layers: impl Fn() -> Vec<(String, String, String)> + Send + 'static,
) {
    loop {
        if let Err(e) = listen_once(&versions, &pg, &layers).await {
            eprintln!("version listener: {e}; reconnecting");
        }
        // Nobody listens: nothing is cached or answered from versions until it does again.
        versions.changed();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How long a reading of the versions may take, and how often they are read without a
/// notification: a connection that died without a word is found out within these.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const REREAD_EVERY: Duration = Duration::from_secs(10);

async fn listen_once(
    versions: &Arc<Versions>,
    pg: &tokio_postgres::Config,
    layers: &impl Fn() -> Vec<(String, String, String)>,
) -> Result<(), String> {
    // TCP keepalives find a peer gone silent within seconds (a socket file needs none).
    let mut pg = pg.clone();
    pg.keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3);
    let (client, mut connection) = pg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let heard = versions.clone();
    let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        // Drive the connection; every notification forgets the versions at once.
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => heard.changed(),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("version listener: {e}");
                    break;
                }
            }
        }
        let _ = closed_tx.send(());
    });
    // Listening before the first reading: no change falls between the two.
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    let statement = client
        .prepare("SELECT vasttile.layer_version($1, $2)")
        .await
        .ok();
    loop {
        let generation = versions.generation();
        let reading = async {
            let mut read = HashMap::new();
            if let Some(statement) = &statement {
                for (schema, function, id) in layers() {
                    // A layer whose version cannot be read (no vasttile layer, no rights) is
                    // drawn every time.
                    if let Ok(row) = client.query_one(statement, &[&function, &schema]).await {
                        if let Some(v) = row.get::<_, Option<i64>>(0) {
                            read.insert(id, v);
                        }
                    }
                }
            }
            read
        };
        let read = tokio::time::timeout(READ_TIMEOUT, reading)
            .await
            .map_err(|_| "reading the versions timed out".to_string())?;
        if client.is_closed() {
            return Ok(());
        }
        if !versions.set(generation, read) {
            continue;
        }
        tokio::select! {
            _ = versions.wake.notified() => {}
            _ = &mut closed => return Ok(()),
            // New layers get their versions, and a dead connection is found out, meanwhile.
            _ = tokio::time::sleep(REREAD_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_ignore_v_and_order_but_not_style_version_or_tile() {
        let t = (14, 8187, 5448, false);
        let a = TileKey::new("heat", 7, t, &query(&[("colormap", "fire"), ("v", "1")]));
        let b = TileKey::new("heat", 7, t, &query(&[("v", "2"), ("colormap", "fire")]));
        assert_eq!(a, b);
        assert_eq!(a.etag(), b.etag());
        let others = [
            TileKey::new("heat", 8, t, &query(&[("colormap", "fire")])),
            TileKey::new("heat", 7, t, &query(&[("colormap", "viridis")])),
            TileKey::new(
                "heat",
                7,
                (14, 8187, 5448, true),
                &query(&[("colormap", "fire")]),
            ),
            TileKey::new(
                "heat",
                7,
                (14, 8187, 5449, false),
                &query(&[("colormap", "fire")]),
            ),
            TileKey::new("dots", 7, t, &query(&[("colormap", "fire")])),
        ];
        for o in &others {
            assert_ne!(&a, o);
            assert_ne!(a.etag(), o.etag());
        }
        assert!(a.etag().starts_with("\"v") && a.etag().ends_with('"'));
    }

    #[test]
    fn a_change_forgets_versions_and_an_older_reading_is_not_kept() {
        let v = Versions::default();
        assert_eq!(v.of("heat"), None);
        let g = v.generation();
        assert!(v.set(g, HashMap::from([("heat".to_string(), 3)])));
        assert_eq!(v.of("heat"), Some(3));
        let g = v.generation();
        v.changed();
        assert_eq!(v.of("heat"), None);
        // A reading that began before the change is dropped.
        assert!(!v.set(g, HashMap::from([("heat".to_string(), 3)])));
        assert_eq!(v.of("heat"), None);
        assert!(v.set(v.generation(), HashMap::from([("heat".to_string(), 4)])));
        assert_eq!(v.of("heat"), Some(4));
    }

    #[test]
    fn the_cache_holds_its_bytes_at_most() {
        let cache = tile_cache(1).unwrap();
        let png = Bytes::from(vec![0u8; 100_000]);
        for i in 0..100 {
            cache.insert(
                TileKey::new("heat", 1, (10, i, 0, false), &HashMap::new()),
                png.clone(),
            );
        }
        assert!(cache.weight() <= 1 << 20, "{}", cache.weight());
        assert!(cache.len() <= 10 && cache.len() >= 5, "{}", cache.len());
        assert!(tile_cache(0).is_none());
    }
}
