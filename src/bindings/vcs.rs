//! SQL family: VCS coordinates, Morton keys, tiles and pixels. All pure: IMMUTABLE STRICT
//! PARALLEL SAFE, so they fold to constants in WHERE clauses and work in indexes.

use super::OrRaise;
use pgrx::prelude::*;
use vasttile_core::geometry::vcs::{self, PixelGrid, Tile, TileSize};

/// Longitude (degrees, -180..180) to VCS x.
#[pg_extern(immutable, strict, parallel_safe)]
fn lon_to_vcs(lon: f64) -> i32 {
    vcs::lon_to_vcs(lon).or_raise()
}

/// Latitude (degrees, -90..90; clamped to +-85.0511287798) to VCS y.
#[pg_extern(immutable, strict, parallel_safe)]
fn lat_to_vcs(lat: f64) -> i32 {
    vcs::lat_to_vcs(lat).or_raise()
}

/// VCS x to the longitude of the centre of its unit.
#[pg_extern(immutable, strict, parallel_safe)]
fn vcs_to_lon(x: i32) -> f64 {
    vcs::vcs_to_lon(x).or_raise()
}

/// VCS y to the latitude of the centre of its unit.
#[pg_extern(immutable, strict, parallel_safe)]
fn vcs_to_lat(y: i32) -> f64 {
    vcs::vcs_to_lat(y).or_raise()
}

/// Morton key of a VCS point, in one step from longitude and latitude.
#[pg_extern(immutable, strict, parallel_safe)]
fn lonlat_to_key(lon: f64, lat: f64) -> i64 {
    let x = vcs::lon_to_vcs(lon).or_raise();
    let y = vcs::lat_to_vcs(lat).or_raise();
    vcs::vcs_key(x, y).or_raise()
}

/// Pixel coordinate at zoom z (256-px tiles): `v >> (23 - z)`.
#[pg_extern(immutable, strict, parallel_safe)]
fn vcs_pixel(v: i32, z: i32) -> i32 {
    let v = vcs::check_vcs(v, "VCS coordinate").or_raise();
    vcs::pixel_at_zoom(v, vcs::check_zoom(z).or_raise()) as i32
}

/// Tile coordinate at zoom z: `v >> (31 - z)`.
#[pg_extern(immutable, strict, parallel_safe)]
fn vcs_tile(v: i32, z: i32) -> i32 {
    let v = vcs::check_vcs(v, "VCS coordinate").or_raise();
    vcs::tile_at_zoom(v, vcs::check_zoom(z).or_raise()) as i32
}

/// Pixel coordinate inside its tile at zoom z, for 256- or 512-px tiles.
#[pg_extern(immutable, strict, parallel_safe)]
fn vcs_pixel_in_tile(v: i32, z: i32, tile_size: default!(i32, 256)) -> i32 {
    let v = vcs::check_vcs(v, "VCS coordinate").or_raise();
    let z = vcs::check_zoom(z).or_raise();
    let size = TileSize::from_px(tile_size as i64).or_raise();
    vcs::pixel_in_tile(v, z, size).or_raise() as i32
}

/// Morton key of (x, y): the bits interleaved, x on the even bits. Non-negative, 62 bits.
#[pg_extern(immutable, strict, parallel_safe)]
fn vcs_key(x: i32, y: i32) -> i64 {
    vcs::vcs_key(x, y).or_raise()
}

/// VCS x of a Morton key.
#[pg_extern(immutable, strict, parallel_safe)]
fn vcs_key_x(key: i64) -> i32 {
    vcs::vcs_from_key(key).or_raise().0
}

/// VCS y of a Morton key.
#[pg_extern(immutable, strict, parallel_safe)]
fn vcs_key_y(key: i64) -> i32 {
    vcs::vcs_from_key(key).or_raise().1
}

/// One value per pixel of zoom z: `key >> (46 - 2z)` (256-px tiles) or `key >> (44 - 2z)` (512).
/// `SELECT DISTINCT pixel_key(...)` and `GROUP BY pixel_key(...)` work on it directly.
#[pg_extern(immutable, strict, parallel_safe)]
fn pixel_key(key: i64, z: i32, tile_size: default!(i32, 256)) -> i64 {
    vcs::vcs_from_key(key).or_raise();
    let size = TileSize::from_px(tile_size as i64).or_raise();
    let grid = PixelGrid::new(vcs::check_zoom(z).or_raise(), size).or_raise();
    grid.pixel_key(key)
}

/// First Morton key of tile (z, x, y).
#[pg_extern(immutable, strict, parallel_safe)]
fn tile_key_lo(z: i32, x: i32, y: i32) -> i64 {
    Tile::new(z, x, y).or_raise().key_range().0
}

/// One past the last Morton key of tile (z, x, y).
#[pg_extern(immutable, strict, parallel_safe)]
fn tile_key_hi(z: i32, x: i32, y: i32) -> i64 {
    Tile::new(z, x, y).or_raise().key_range().1
}

/// The tile's keys as an `int8range` `[lo, hi)`.
#[pg_extern(immutable, strict, parallel_safe)]
fn tile_key_range(z: i32, x: i32, y: i32) -> pgrx::Range<i64> {
    let (lo, hi) = Tile::new(z, x, y).or_raise().key_range();
    pgrx::Range::from(lo..hi)
}

/// Key ranges `[lo, hi)` covering the tile and a ring `margin` pixels wide around it.
#[pg_extern(immutable, strict, parallel_safe)]
fn tile_key_ranges(
    z: i32,
    x: i32,
    y: i32,
    margin: default!(i32, 0),
    tile_size: default!(i32, 256),
) -> TableIterator<'static, (name!(lo, i64), name!(hi, i64))> {
    let tile = Tile::new(z, x, y).or_raise();
    let size = TileSize::from_px(tile_size as i64).or_raise();
    TableIterator::new(vcs::tile_key_ranges(tile, size, margin as i64).or_raise())
}

/// The tile's half-open VCS bounds.
#[pg_extern(immutable, strict, parallel_safe)]
fn tile_vcs_bounds(
    z: i32,
    x: i32,
    y: i32,
) -> TableIterator<
    'static,
    (
        name!(xmin, i64),
        name!(ymin, i64),
        name!(xmax, i64),
        name!(ymax, i64),
    ),
> {
    TableIterator::once(Tile::new(z, x, y).or_raise().vcs_bounds())
}

/// The tile's envelope in degrees.
#[pg_extern(immutable, strict, parallel_safe)]
fn tile_envelope(
    z: i32,
    x: i32,
    y: i32,
) -> TableIterator<
    'static,
    (
        name!(west, f64),
        name!(south, f64),
        name!(east, f64),
        name!(north, f64),
    ),
> {
    TableIterator::once(Tile::new(z, x, y).or_raise().envelope())
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::bindings::test_support::sqlstate_of;
    use pgrx::prelude::*;

    #[pg_test]
    fn conversions_agree_with_the_core() {
        let x = Spi::get_one::<i32>("SELECT vasttile.lon_to_vcs(-87.63)").unwrap();
        assert_eq!(x, vasttile_core::geometry::vcs::lon_to_vcs(-87.63).ok());
        let key = Spi::get_one::<i64>("SELECT vasttile.lonlat_to_key(-87.63, 41.88)").unwrap();
        let (kx, ky) = vasttile_core::geometry::vcs::vcs_from_key(key.unwrap()).unwrap();
        assert_eq!(Some(kx), x);
        assert_eq!(
            Some(ky),
            vasttile_core::geometry::vcs::lat_to_vcs(41.88).ok()
        );
    }

    #[pg_test]
    fn nulls_follow_strict() {
        for f in [
            "vasttile.lon_to_vcs(NULL)::text",
            "vasttile.vcs_key(1, NULL)::text",
            "vasttile.tile_key_lo(NULL, 0, 0)::text",
            "vasttile.pixel_key(1, NULL)::text",
        ] {
            assert_eq!(
                Spi::get_one::<String>(&format!("SELECT {f}")).unwrap(),
                None,
                "{f}"
            );
        }
    }

    #[pg_test]
    fn bad_vcs_input_is_22023() {
        for sql in [
            "SELECT vasttile.lon_to_vcs('NaN')",
            "SELECT vasttile.lat_to_vcs('Infinity')",
            "SELECT vasttile.lat_to_vcs(90.5)",
            "SELECT vasttile.tile_key_lo(24, 0, 0)",
            "SELECT vasttile.tile_key_lo(-1, 0, 0)",
            "SELECT vasttile.tile_key_hi(2, 4, 0)",
            "SELECT vasttile.tile_key_hi(2, 0, -1)",
            "SELECT vasttile.vcs_pixel_in_tile(5, 3, 300)",
            "SELECT vasttile.pixel_key(5, 23, 512)",
            "SELECT vasttile.vcs_key_x(-1)",
            "SELECT vasttile.vcs_key(-1, 0)",
            "SELECT * FROM vasttile.tile_key_ranges(3, 1, 1, -1)",
        ] {
            assert_eq!(sqlstate_of(sql), "22023", "{sql}");
        }
    }

    #[pg_test]
    fn key_range_filters_use_the_index() {
        Spi::run(
            "CREATE TABLE pts AS SELECT vasttile.lonlat_to_key(g % 360 - 180, (g % 170) - 85) AS k \
             FROM generate_series(1, 20000) g; CREATE INDEX ON pts (k); ANALYZE pts;",
        )
        .unwrap();
        let plan = Spi::explain(
            "SELECT count(*) FROM pts \
             WHERE k >= vasttile.tile_key_lo(6, 10, 20) AND k < vasttile.tile_key_hi(6, 10, 20)",
        )
        .unwrap()
        .0
        .to_string();
        // The bounds fold to constants at plan time and become the index condition.
        let lo = vasttile_core::geometry::vcs::Tile::new(6, 10, 20)
            .unwrap()
            .key_range()
            .0;
        assert!(
            plan.contains(&format!(r#""Index Cond":"((k >= '{lo}'::bigint)"#)),
            "{plan}"
        );
    }
}
