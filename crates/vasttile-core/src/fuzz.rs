//! Stored bytes are untrusted: every decoder of the core is fed arbitrary bytes and truncated,
//! bit-flipped and length-forged versions of valid encodings. Each must return `Ok` or `Err`,
//! never panic, and never allocate much more than the input justifies (a forged count must not
//! make it reserve memory for data that is not there).

use crate::encoding::png::{self, Effort, RgbaImage};
use crate::geometry::polygon::{paths_from_geojson, paths_from_topojson, MultiPolygon};
use crate::geometry::vcs::{Tile, TileSize};
use crate::pyramid::cdf::Cdf;
use crate::pyramid::levels::StoredLevels;
use crate::raster::access::AccessState;
use crate::raster::dots::{DotTileState, PixelSet};
use crate::raster::heat::HeatGrid;
use crate::raster::skeleton::Skeleton;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting the bytes live on each thread and their peak, so that a test
/// can measure what one call allocates.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn count_alloc(size: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + size;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn count_free(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

// SAFETY: forwards to the system allocator unchanged; the counters are plain thread-locals
// that need no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size), which is
        // exactly what `System.alloc` requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc(layout.size());
        // SAFETY: as for `alloc`: the caller's layout meets `System.alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_free(layout.size());
        // SAFETY: the caller guarantees `ptr` came from this allocator with `layout`, and this
        // allocator only hands out blocks from `System`, so `System.dealloc` may free it.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_free(layout.size());
        count_alloc(new_size);
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `dealloc`) and the caller
        // guarantees `new_size` is valid for it, as `System.realloc` requires.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated (beyond what was live before) while running `f`.
fn peak_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    (r, PEAK.with(Cell::get) - base)
}

/// What any decoder may allocate whatever its input: the largest fixed-size object (a 512 x 512
/// grid of f64 is 2 MiB; decoding keeps a couple) plus a bounded factor of the input.
const FIXED_ALLOWANCE: usize = 8 << 20;
const PER_INPUT_BYTE: usize = 64;

/// Run every decoder on `bytes`: none may panic (a panic fails the test) and none may allocate
/// beyond `FIXED_ALLOWANCE + PER_INPUT_BYTE * len`.
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    let json: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
    type Decoder<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let decoders: Vec<Decoder> = vec![
        ("HeatGrid", Box::new(|| drop(HeatGrid::from_bytes(bytes)))),
        (
            "HeatGrid compact",
            Box::new(|| drop(HeatGrid::from_compact_bytes(bytes))),
        ),
        (
            "MultiPolygon",
            Box::new(|| drop(MultiPolygon::from_bytes(bytes))),
        ),
        ("Skeleton", Box::new(|| drop(Skeleton::from_bytes(bytes)))),
        ("Cdf", Box::new(|| drop(Cdf::from_bytes(bytes)))),
        (
            "HeatGrid stored",
            Box::new(|| drop(HeatGrid::from_stored_bytes(bytes))),
        ),
        (
            "StoredLevels",
            Box::new(|| drop(StoredLevels::from_bytes(bytes, 256))),
        ),
        ("PixelSet", Box::new(|| drop(PixelSet::from_bytes(bytes)))),
        (
            "DotTileState",
            Box::new(|| drop(DotTileState::from_bytes(bytes))),
        ),
        (
            "AccessState",
            Box::new(|| drop(AccessState::from_bytes(bytes))),
        ),
        ("png::decode", Box::new(|| drop(png::decode(bytes)))),
        ("png::info", Box::new(|| drop(png::info(bytes)))),
        ("WKB", Box::new(|| drop(MultiPolygon::from_wkb(bytes)))),
        (
            "TopoJSON polygons",
            Box::new(|| drop(MultiPolygon::from_topojson(&text, "o"))),
        ),
        (
            "TopoJSON paths",
            Box::new(|| drop(paths_from_topojson(&text, "o"))),
        ),
        (
            "GeoJSON",
            Box::new(|| {
                if let Some(v) = &json {
                    drop(MultiPolygon::from_geojson(v));
                    drop(paths_from_geojson(v));
                }
            }),
        ),
    ];
    for (name, decode) in decoders {
        let ((), peak) = peak_allocation(decode);
        let limit = FIXED_ALLOWANCE + PER_INPUT_BYTE * bytes.len();
        prop_assert!(
            peak <= limit,
            "{name} allocated {peak} bytes for {} input bytes",
            bytes.len()
        );
    }
    Ok(())
}

/// Valid encodings of every stored format, the seeds of the mutations.
fn valid_encodings() -> Vec<Vec<u8>> {
    let tile = Tile::new(4, 4, 6).expect("valid tile");
    let (x0, y0, _, _) = tile.vcs_bounds();
    let unit = 1i64 << 19;
    let point = |i: i64| ((x0 + i * 7 * unit) as i32, (y0 + i * 3 * unit) as i32);
    let mut out = Vec::new();
    for size in [TileSize::Px256, TileSize::Px512] {
        let mut sparse = HeatGrid::new(tile, size).expect("grid");
        for i in 0..20 {
            let (x, y) = point(i);
            sparse.add_point(x, y, 1.5).expect("point");
        }
        out.push(sparse.to_bytes());
    }
    let dense = HeatGrid::from_values(
        tile,
        TileSize::Px256,
        3,
        (0..256 * 256).map(|i| (i % 7) as f64).collect(),
    )
    .expect("grid");
    out.push(dense.to_bytes());
    let square = serde_json::json!({"type": "Polygon", "coordinates":
        [[[-90.0, 30.0], [-80.0, 30.0], [-80.0, 40.0], [-90.0, 40.0], [-90.0, 30.0]],
         [[-86.0, 34.0], [-84.0, 34.0], [-84.0, 36.0], [-86.0, 34.0]]]});
    let mp = MultiPolygon::from_geojson(&square).expect("polygon");
    out.push(mp.to_bytes());
    let mut sk = Skeleton::new(tile, TileSize::Px256).expect("skeleton");
    sk.fill(7, &mp);
    out.push(sk.to_bytes());
    out.push(Cdf::of((0..500).map(|i| (i % 37) as f64)).to_bytes());
    out.push(dense.to_stored_bytes());
    out.push(
        StoredLevels::Ranks {
            values: (1..=6).map(|v| (v as f64).to_bits()).collect(),
            ranks: (0..54).map(|i| i as f64 / 54.0).collect(),
        }
        .to_bytes(),
    );
    out.push(StoredLevels::Plain((0..65536).map(|i| (i % 251) as u8).collect()).to_bytes());
    let style = serde_json::json!({"radius": 2});
    let mut dots = DotTileState::new(4, 4, 6, &style).expect("dots");
    for i in 0..20 {
        let (x, y) = point(i);
        dots.add_point(x, y).expect("point");
    }
    let dots = dots.to_bytes();
    out.push(dots[12..].to_vec()); // the pixel set alone
    out.push(dots);
    let mut access = AccessState::new(tile, TileSize::Px256, 1.2).expect("access");
    for i in 0..20 {
        let (x, y) = point(i);
        access.add_point(x, y).expect("point");
    }
    out.push(access.to_bytes());
    let mut image = RgbaImage::transparent(16, 16);
    image.data[3] = 255;
    out.push(png::encode(&image, Effort::Fast).expect("png"));
    let mut wkb = vec![1u8, 3, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0];
    for (x, y) in [
        (0.0f64, 0.0f64),
        (1.0, 0.0),
        (1.0, 1.0),
        (0.0, 1.0),
        (0.0, 0.0),
    ] {
        wkb.extend_from_slice(&x.to_le_bytes());
        wkb.extend_from_slice(&y.to_le_bytes());
    }
    out.push(wkb);
    out.push(
        br#"{"type": "Topology", "arcs": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], [[0, 0], [2, 2]]],
             "objects": {"o": {"type": "GeometryCollection", "geometries": [
               {"type": "Polygon", "arcs": [[0]]}, {"type": "LineString", "arcs": [1, -1]}]}}}"#
            .to_vec(),
    );
    out
}

/// A change to a valid encoding.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    FlipBit(usize),
    /// Overwrite the little-endian u32 at an offset: forged counts, lengths and coordinates.
    Word(usize, u32),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let word = prop_oneof![
        Just(u32::MAX),
        Just(i32::MAX as u32),
        Just(0x8000_0000),
        Just(0x0100_0000),
        Just(65_536),
        Just(65_537),
        Just(0),
        Just(1),
        any::<u32>(),
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::FlipBit),
        (any::<usize>(), word).prop_map(|(at, w)| Mutation::Word(at, w)),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
    ]
}

fn apply(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    match m {
        Mutation::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
        Mutation::FlipBit(_) if bytes.is_empty() => {}
        Mutation::FlipBit(at) => {
            let bit = at % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
        Mutation::Word(at, w) => {
            if bytes.len() >= 4 {
                let at = at % (bytes.len() - 3);
                bytes[at..at + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
        Mutation::Extend(tail) => bytes.extend_from_slice(tail),
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoders_survive_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes)?;
    }

    /// Arbitrary bytes behind each format's magic, so the fuzz gets past the first check.
    #[test]
    fn decoders_survive_arbitrary_bodies(
        magic in prop::sample::select(vec![&b"VTHG\x01"[..], b"VTPG", b"VTSK", b"VTCD", b"\x89PNG\r\n\x1a\n"]),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&body);
        decode_all(&bytes)?;
    }

    #[test]
    fn decoders_survive_mutated_encodings(
        seed in 0usize..64,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let valid = valid_encodings();
        let bytes = mutations.iter().fold(valid[seed % valid.len()].clone(), apply);
        decode_all(&bytes)?;
    }
}

proptest! {
    /// TopoJSON whose arcs, arc indexes, positions and transform are arbitrary: the `topojson`
    /// crate indexes and unpacks them unchecked, so each must be checked before it runs.
    #[test]
    fn topojson_survives_arbitrary_topologies(
        arcs in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(-200.0..200.0f64, 0..4), 0..7), 0..4),
        indexes in prop::collection::vec(
            prop::collection::vec(prop_oneof![-6i64..6, any::<i64>()], 0..5), 0..4),
        kind in prop::sample::select(vec!["Polygon", "MultiPolygon", "LineString", "MultiLineString", "Point", "MultiPoint", "GeometryCollection"]),
        transform in prop::option::of((prop::collection::vec(-2.0..2.0f64, 0..3), prop::collection::vec(-2.0..2.0f64, 0..3))),
    ) {
        use serde_json::json;
        let first = indexes.first().cloned().unwrap_or_default();
        let geometry = match kind {
            "LineString" => json!({"type": kind, "arcs": first}),
            "MultiPolygon" => json!({"type": kind, "arcs": [indexes]}),
            "Point" => json!({"type": kind, "coordinates": arcs.first().and_then(|a| a.first())}),
            "MultiPoint" => json!({"type": kind, "coordinates": arcs.first()}),
            "GeometryCollection" => json!({"type": kind, "geometries": [
                {"type": "Polygon", "arcs": indexes},
                {"type": "GeometryCollection", "geometries": []}]}),
            _ => json!({"type": kind, "arcs": indexes}),
        };
        let mut topo = json!({"type": "Topology", "arcs": arcs, "objects": {"o": geometry}});
        if let Some((scale, translate)) = transform {
            topo["transform"] = json!({"scale": scale, "translate": translate});
        }
        let text = topo.to_string();
        let _ = MultiPolygon::from_topojson(&text, "o");
        let _ = paths_from_topojson(&text, "o");
    }
}

/// Every truncation and every single bit flip of every valid encoding, exhaustively.
#[test]
fn decoders_survive_every_truncation_and_bit_flip() {
    for valid in valid_encodings() {
        // Dense grids are large: sample their cut points and bits (every one of the header).
        let cut_step = (valid.len() / 256).max(1);
        let cuts = (0..64.min(valid.len())).chain((0..=valid.len()).step_by(cut_step));
        for at in cuts {
            decode_all(&valid[..at]).expect("truncated");
        }
        let bit_step = (valid.len() * 8 / 512).max(1);
        let bits = (0..512.min(valid.len() * 8)).chain((0..valid.len() * 8).step_by(bit_step));
        for bit in bits {
            let mut bytes = valid.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            decode_all(&bytes).expect("bit flipped");
        }
    }
}

/// Forged counts in the headers of the formats with counts: each must fail for lack of data,
/// without reserving memory for it first.
#[test]
fn forged_counts_do_not_allocate() {
    let cases: Vec<Vec<u8>> = vec![
        // A vcspolygon of one polygon of one ring claiming 10 million points.
        [
            &b"VTPG"[..],
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &10_000_000u32.to_le_bytes(),
        ]
        .concat(),
        // ... and of 4 billion polygons of no rings.
        [&b"VTPG"[..], &u32::MAX.to_le_bytes()].concat(),
        // A CDF claiming 4 billion steps.
        [&b"VTCD"[..], &u32::MAX.to_le_bytes(), &0f64.to_le_bytes()].concat(),
    ];
    for bytes in cases {
        let (result, peak) = peak_allocation(|| {
            (
                MultiPolygon::from_bytes(&bytes).is_err(),
                Cdf::from_bytes(&bytes).is_err(),
            )
        });
        assert_eq!(result, (true, true));
        assert!(
            peak < 4096,
            "{peak} bytes allocated for {} input bytes",
            bytes.len()
        );
    }
}
