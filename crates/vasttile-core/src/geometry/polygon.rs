//! Polygons in VCS integers: multipolygons with holes, imported from GeoJSON, TopoJSON and WKB
//! (so PostGIS users pass `ST_AsBinary(geom)`, without vasttile needing PostGIS), and stored
//! compactly as bytes (the SQL type `vcspolygon`, a domain over `bytea`).

use crate::error::{CoreError, CoreResult};
use crate::geometry::vcs::{lat_to_vcs, lon_to_vcs};
use geo_traits::{
    CoordTrait, GeometryTrait, GeometryType, LineStringTrait, MultiPolygonTrait, PolygonTrait,
};

/// Most vertices one polygon may have: a county has thousands, a coastline a few million.
pub const MAX_VERTICES: usize = 10_000_000;
const MAGIC: &[u8; 4] = b"VTPG";

/// Polygons, each a list of rings (the first the outline, the others holes), each ring a closed
/// list of VCS points (last == first). Filled by the even-odd rule over all rings.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MultiPolygon {
    /// Polygons -> rings -> VCS points.
    pub polygons: Vec<Vec<Vec<(u32, u32)>>>,
}

fn invalid(detail: impl Into<String>) -> CoreError {
    CoreError::out_of_range("polygon", detail)
}

impl MultiPolygon {
    /// Points over all rings, counting each ring's closing point.
    pub fn vertices(&self) -> usize {
        self.polygons.iter().flatten().map(Vec::len).sum()
    }

    /// Bounding box in VCS units, inclusive: (xmin, ymin, xmax, ymax); `None` when empty.
    pub fn bbox(&self) -> Option<(u32, u32, u32, u32)> {
        let mut pts = self.polygons.iter().flatten().flatten();
        let &(x, y) = pts.next()?;
        Some(pts.fold((x, y, x, y), |(a, b, c, d), &(x, y)| {
            (a.min(x), b.min(y), c.max(x), d.max(y))
        }))
    }

    /// Add a ring of (lon, lat) degrees: closed, at least 4 positions, finite, in range. A ring
    /// that crosses the antimeridian is read on the sphere, as d3-geo reads the same data: cut
    /// at +-180 and closed along the map's edge, and along the pole it encloses, if any
    /// ([`cut_at_antimeridian`]).
    fn push_ring(
        &mut self,
        polygon: usize,
        ring: impl Iterator<Item = (f64, f64)>,
    ) -> CoreResult<()> {
        let mut positions: Vec<(f64, f64)> = Vec::new();
        for (lon, lat) in ring {
            if self.vertices() + positions.len() >= MAX_VERTICES {
                return Err(CoreError::TooLarge {
                    detail: format!("polygon has more than {MAX_VERTICES} vertices"),
                });
            }
            // Checked here, so that the cut below works on valid positions only.
            lon_to_vcs(lon)?;
            lat_to_vcs(lat)?;
            positions.push((lon, lat));
        }
        if positions.len() < 4 {
            return Err(invalid(format!(
                "ring must have at least 4 positions (3 corners and the closing one), got {}",
                positions.len()
            )));
        }
        let (f, l) = (positions[0], positions[positions.len() - 1]);
        if f != l {
            return Err(invalid(format!(
                "ring must be closed: first position {f:?} is not the last {l:?}"
            )));
        }
        for part in cut_at_antimeridian(&positions) {
            let out = part
                .iter()
                .map(|&(lon, lat)| Ok((lon_to_vcs(lon)? as u32, lat_to_vcs(lat)? as u32)))
                .collect::<CoreResult<Vec<_>>>()?;
            self.polygons[polygon].push(out);
        }
        Ok(())
    }

    /// From any geometry of the `geo-traits` family (what WKB and GeoJSON readers give).
    fn from_geometry<G: GeometryTrait<T = f64>>(g: &G) -> CoreResult<MultiPolygon> {
        let mut mp = MultiPolygon::default();
        match g.as_type() {
            GeometryType::Polygon(p) => mp.push_polygon(p)?,
            GeometryType::MultiPolygon(m) => {
                for p in m.polygons() {
                    mp.push_polygon(&p)?;
                }
            }
            _ => return Err(invalid("must be a Polygon or a MultiPolygon")),
        }
        Ok(mp)
    }

    fn push_polygon<P: PolygonTrait<T = f64>>(&mut self, p: &P) -> CoreResult<()> {
        self.polygons.push(Vec::new());
        let i = self.polygons.len() - 1;
        let Some(outer) = p.exterior() else {
            self.polygons.pop();
            return Ok(()); // an empty polygon adds nothing
        };
        self.push_ring(i, outer.coords().map(|c| (c.x(), c.y())))?;
        for hole in p.interiors() {
            self.push_ring(i, hole.coords().map(|c| (c.x(), c.y())))?;
        }
        Ok(())
    }

    /// From WKB (ISO or extended, either byte order) of a Polygon or MultiPolygon in lon/lat degrees.
    pub fn from_wkb(bytes: &[u8]) -> CoreResult<MultiPolygon> {
        let g =
            wkb::reader::read_wkb(bytes).map_err(|e| invalid(format!("WKB is not valid: {e}")))?;
        MultiPolygon::from_geometry(&g)
    }

    /// From a GeoJSON Polygon or MultiPolygon geometry (or a Feature holding one).
    pub fn from_geojson(value: &serde_json::Value) -> CoreResult<MultiPolygon> {
        MultiPolygon::from_geojson_value(&geojson_geometry(value, "polygon")?)
    }

    /// `lenient`: skip rings too short to enclose anything (TopoJSON's quantisation collapses
    /// tiny islands to a point) instead of failing.
    fn from_geojson_value_with(v: &geojson::Value, lenient: bool) -> CoreResult<MultiPolygon> {
        let mut mp = MultiPolygon::default();
        let push = |mp: &mut MultiPolygon, rings: &Vec<Vec<Vec<f64>>>| -> CoreResult<()> {
            mp.polygons.push(Vec::new());
            let i = mp.polygons.len() - 1;
            for ring in rings {
                if ring.iter().any(|pos| pos.len() < 2) {
                    return Err(invalid("positions must have at least two numbers"));
                }
                if lenient && ring.len() < 4 {
                    continue;
                }
                mp.push_ring(i, ring.iter().map(|pos| (pos[0], pos[1])))?;
            }
            Ok(())
        };
        match v {
            geojson::Value::Polygon(rings) => push(&mut mp, rings)?,
            geojson::Value::MultiPolygon(polys) => {
                for rings in polys {
                    push(&mut mp, rings)?;
                }
            }
            _ => return Err(invalid("must be a Polygon or a MultiPolygon")),
        }
        mp.polygons.retain(|p| !p.is_empty());
        Ok(mp)
    }

    fn from_geojson_value(v: &geojson::Value) -> CoreResult<MultiPolygon> {
        MultiPolygon::from_geojson_value_with(v, false)
    }

    /// The polygon features of object `object` of a TopoJSON topology: (id, properties, polygon).
    /// Rings that quantisation collapsed below 4 positions are skipped.
    pub fn from_topojson(text: &str, object: &str) -> CoreResult<Vec<Feature<MultiPolygon>>> {
        let mut out = Vec::new();
        for (id, props, g) in topojson_features(text, object)? {
            if let geojson::Value::Polygon(_) | geojson::Value::MultiPolygon(_) = g {
                out.push((id, props, MultiPolygon::from_geojson_value_with(&g, true)?));
            }
        }
        Ok(out)
    }

    /// GeoJSON MultiPolygon in lon/lat degrees (each VCS point at the centre of its unit).
    pub fn to_geojson(&self) -> serde_json::Value {
        let coords: Vec<Vec<Vec<[f64; 2]>>> = self
            .polygons
            .iter()
            .map(|p| {
                p.iter()
                    .map(|ring| {
                        ring.iter()
                            .map(|&(x, y)| {
                                [
                                    crate::geometry::vcs::vcs_to_lon(x as i32).unwrap_or(0.0),
                                    crate::geometry::vcs::vcs_to_lat(y as i32).unwrap_or(0.0),
                                ]
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        serde_json::json!({"type": "MultiPolygon", "coordinates": coords})
    }

    /// Bytes: magic, polygon count, then per polygon its ring count, per ring its point count,
    /// then the points (x, y as little-endian u32).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.vertices() * 8 + self.polygons.len() * 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.polygons.len() as u32).to_le_bytes());
        for p in &self.polygons {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            for ring in p {
                out.extend_from_slice(&(ring.len() as u32).to_le_bytes());
                for (x, y) in ring {
                    out.extend_from_slice(&x.to_le_bytes());
                    out.extend_from_slice(&y.to_le_bytes());
                }
            }
        }
        out
    }

    /// Decode [`MultiPolygon::to_bytes`]. Untrusted input: anything malformed is an error, never a
    /// panic, and forged counts cannot make it reserve memory. Rings need at least 4 points and
    /// coordinates must fit `int4`; closure is not checked.
    pub fn from_bytes(bytes: &[u8]) -> CoreResult<MultiPolygon> {
        let bad = || invalid("bytes are not a vcspolygon");
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(bad());
        }
        let mut at = 4;
        let mut next = || -> CoreResult<u32> {
            let b = bytes.get(at..at + 4).ok_or_else(bad)?;
            at += 4;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut mp = MultiPolygon::default();
        let mut total = 0usize;
        for _ in 0..next()? {
            let mut rings = Vec::new();
            for _ in 0..next()? {
                let n = next()? as usize;
                total += n;
                // A forged count must not reserve memory for points that are not there.
                if total > MAX_VERTICES || n < 4 || n * 8 > bytes.len() {
                    return Err(bad());
                }
                let mut ring = Vec::with_capacity(n);
                for _ in 0..n {
                    let (x, y) = (next()?, next()?);
                    if x > i32::MAX as u32 || y > i32::MAX as u32 {
                        return Err(bad());
                    }
                    ring.push((x, y));
                }
                // Rings are stored closed: an open one would fill its rows to the tile's edge.
                if ring.first() != ring.last() {
                    return Err(bad());
                }
                rings.push(ring);
            }
            mp.polygons.push(rings);
        }
        Ok(mp)
    }
}

/// A feature read from TopoJSON: its id, its properties and its shape.
pub type Feature<T> = (Option<String>, serde_json::Value, T);

/// A path: VCS points in order.
pub type Path = Vec<(u32, u32)>;

/// Most positions the geometries of one TopoJSON object may expand to (an arc is copied into
/// every ring that references it, so a small text can name a huge geometry).
pub const MAX_TOPOJSON_POSITIONS: usize = 5_000_000;

/// A closed ring of (lon, lat) degrees as rings that fill the same part of the sphere on the
/// flat map. A ring none of whose successive positions are more than 180 degrees apart in
/// longitude is returned as it is. Otherwise (Russia, Fiji, Antarctica in Natural Earth) each
/// such step crosses the antimeridian: the ring is cut there into arcs that end on the map's
/// east or west edge, at the latitude where the step crosses it, and the arcs are joined again
/// along the edges. Walking up an edge from the pole, each crossing enters or leaves the
/// polygon, so the crossings on one edge, sorted by latitude, pair up into the stretches of edge
/// inside it; an odd number of crossings means the ring goes round a pole (the one on the side
/// of its mean latitude), and the stretch from that pole to the first crossing is inside too,
/// the two edges then joined along the pole.
pub fn cut_at_antimeridian(ring: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let pts = &ring[..ring.len().saturating_sub(1)];
    let m = pts.len();
    let crosses = |i: usize| (pts[(i + 1) % m].0 - pts[i].0).abs() > 180.0;
    let crossings: Vec<usize> = (0..m).filter(|&i| crosses(i)).collect();
    if crossings.is_empty() {
        return vec![ring.to_vec()];
    }
    // Where step i leaves the map: the edge on the side it starts, at the interpolated latitude.
    let exit = |i: usize| {
        let (a, b) = (pts[i], pts[(i + 1) % m]);
        let edge = if a.0 > 0.0 { 180.0 } else { -180.0 };
        let b_lon = b.0 + 2.0 * edge;
        let t = if b_lon == a.0 {
            0.0
        } else {
            (edge - a.0) / (b_lon - a.0)
        };
        (edge, a.1 + t * (b.1 - a.1))
    };
    // Arc k: from where crossing k re-enters (the other edge) to where crossing k + 1 leaves.
    let k = crossings.len();
    let mut arcs: Vec<Vec<(f64, f64)>> = Vec::with_capacity(k);
    for c in 0..k {
        let (from, to) = (crossings[c], crossings[(c + 1) % k]);
        let (edge, lat) = exit(from);
        let mut arc = vec![(-edge, lat)];
        let mut i = (from + 1) % m;
        loop {
            arc.push(pts[i]);
            if i == to {
                break;
            }
            i = (i + 1) % m;
        }
        arc.push(exit(to));
        arcs.push(arc);
    }
    // Nodes: arc ends (2 k + 1 for the end of arc k, 2 k for its start), then the poles.
    let mean_lat = pts.iter().map(|p| p.1).sum::<f64>() / m as f64;
    let pole = if mean_lat < 0.0 { -90.0 } else { 90.0 };
    let (west_pole, east_pole) = (2 * k, 2 * k + 1);
    let point = |node: usize| -> (f64, f64) {
        match node {
            n if n == west_pole => (-180.0, pole),
            n if n == east_pole => (180.0, pole),
            n if n % 2 == 0 => arcs[n / 2][0],
            n => arcs[n / 2][arcs[n / 2].len() - 1],
        }
    };
    let mut partner = vec![usize::MAX; 2 * k + 2];
    for edge in [-180.0, 180.0] {
        let mut nodes: Vec<usize> = (0..2 * k).filter(|&n| point(n).0 == edge).collect();
        if nodes.len() % 2 == 1 {
            nodes.push(if edge < 0.0 { west_pole } else { east_pole });
        }
        // From the pole the ring goes round (if any) up or down the edge.
        nodes.sort_by(|&a, &b| {
            let (la, lb) = (point(a).1, point(b).1);
            if pole < 0.0 {
                la.total_cmp(&lb)
            } else {
                lb.total_cmp(&la)
            }
        });
        for pair in nodes.chunks_exact(2) {
            partner[pair[0]] = pair[1];
            partner[pair[1]] = pair[0];
        }
    }
    // Walk arcs and edge stretches into closed rings (even-odd filling ignores direction).
    let mut used = vec![false; k];
    let mut out = Vec::new();
    for first in 0..k {
        if used[first] {
            continue;
        }
        let mut ring: Vec<(f64, f64)> = Vec::new();
        let (mut arc, mut forward) = (first, true);
        loop {
            used[arc] = true;
            if forward {
                ring.extend(&arcs[arc]);
            } else {
                ring.extend(arcs[arc].iter().rev());
            }
            let mut node = partner[if forward { 2 * arc + 1 } else { 2 * arc }];
            if node == west_pole || node == east_pole {
                // Along the pole to the other edge, then along that edge.
                let other = if node == west_pole {
                    east_pole
                } else {
                    west_pole
                };
                ring.push(point(node));
                ring.push(point(other));
                node = partner[other];
            }
            if node == usize::MAX || used[node / 2] {
                break;
            }
            (arc, forward) = (node / 2, node % 2 == 0);
        }
        ring.push(ring[0]);
        out.push(ring);
    }
    out
}

fn bad_topojson(detail: impl Into<String>) -> CoreError {
    CoreError::out_of_range("topojson", detail)
}

/// Check what the `topojson` crate would otherwise panic on or expand without bound: the
/// transform has two scales and two translations, object `object`'s geometries (no nested
/// collections) reference arcs that exist by indexes that fit, their positions have two numbers,
/// and the arcs they reference add up to at most `MAX_TOPOJSON_POSITIONS` positions.
fn check_topology(value: &serde_json::Value, object: &str) -> CoreResult<()> {
    use serde_json::Value;
    if let Some(tr) = value.get("transform") {
        for key in ["scale", "translate"] {
            if let Some(Value::Array(a)) = tr.get(key) {
                if a.len() < 2 {
                    return Err(bad_topojson(format!(
                        "transform {key} must have two numbers, got {}",
                        a.len()
                    )));
                }
            }
        }
    }
    let arcs: &[Value] = match value.get("arcs") {
        Some(Value::Array(a)) => a,
        _ => &[],
    };
    let arc_len = |a: &Value| a.as_array().map_or(0, Vec::len);
    let position_ok = |p: &Value| p.as_array().is_some_and(|p| p.len() >= 2);
    let Some(root) = value.get("objects").and_then(|o| o.get(object)) else {
        return Ok(()); // the crate reports a missing object
    };
    let mut total = 0usize;
    // Walk the geometry: (value, depth of GeometryCollections around it).
    let mut stack: Vec<(&Value, usize)> = vec![(root, 0)];
    while let Some((g, depth)) = stack.pop() {
        match g.get("type").and_then(Value::as_str) {
            Some("GeometryCollection") => {
                if depth > 0 {
                    return Err(bad_topojson(
                        "GeometryCollections nested in a GeometryCollection are not supported",
                    ));
                }
                if let Some(Value::Array(gs)) = g.get("geometries") {
                    stack.extend(gs.iter().map(|g| (g, depth + 1)));
                }
            }
            Some("Point") => {
                if g.get("coordinates").is_some_and(|p| !position_ok(p)) {
                    return Err(bad_topojson("positions must have at least two numbers"));
                }
            }
            Some("MultiPoint") => {
                if let Some(Value::Array(ps)) = g.get("coordinates") {
                    if !ps.iter().all(position_ok) {
                        return Err(bad_topojson("positions must have at least two numbers"));
                    }
                }
            }
            _ => {
                // Arc indexes, nested to any depth (the crate checks the shape).
                let mut indexes: Vec<&Value> = g.get("arcs").into_iter().collect();
                while let Some(v) = indexes.pop() {
                    match v {
                        Value::Array(a) => indexes.extend(a.iter()),
                        Value::Number(n) => {
                            let i = n.as_i64().ok_or_else(|| {
                                bad_topojson(format!("arc index {n} is not an integer"))
                            })?;
                            let arc = if i < 0 { -(i + 1) } else { i };
                            let arc = usize::try_from(arc)
                                .ok()
                                .and_then(|a| arcs.get(a))
                                .filter(|_| i32::try_from(i).is_ok())
                                .ok_or_else(|| {
                                    bad_topojson(format!(
                                        "arc index {i} is out of range: the topology has {} arcs",
                                        arcs.len()
                                    ))
                                })?;
                            if let Value::Array(ps) = arc {
                                if !ps.iter().all(position_ok) {
                                    return Err(bad_topojson(
                                        "positions must have at least two numbers",
                                    ));
                                }
                            }
                            total = total.saturating_add(arc_len(arc));
                            if total > MAX_TOPOJSON_POSITIONS {
                                return Err(CoreError::TooLarge {
                                    detail: format!(
                                        "TopoJSON object \"{object}\" expands to more than {MAX_TOPOJSON_POSITIONS} positions"
                                    ),
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// The features of object `object` of a TopoJSON topology: (id, properties, geometry).
fn topojson_features(text: &str, object: &str) -> CoreResult<Vec<Feature<geojson::Value>>> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad_topojson(format!("is not valid JSON: {e}")))?;
    check_topology(&value, object)?;
    let serde_json::Value::Object(map) = value else {
        return Err(bad_topojson("must be a JSON object"));
    };
    let topo = match topojson::TopoJson::from_json_object(map) {
        Ok(topojson::TopoJson::Topology(t)) => t,
        Ok(_) => return Err(invalid("TopoJSON must be a Topology")),
        Err(e) => return Err(invalid(format!("TopoJSON is not valid: {e}"))),
    };
    let fc = topojson::to_geojson(&topo, object)
        .map_err(|e| invalid(format!("TopoJSON object \"{object}\": {e}")))?;
    Ok(fc
        .features
        .into_iter()
        .filter_map(|f| {
            let id = f.id.as_ref().map(|id| match id {
                geojson::feature::Id::String(s) => s.clone(),
                geojson::feature::Id::Number(n) => n.to_string(),
            });
            let props = f
                .properties
                .clone()
                .map(serde_json::Value::Object)
                .unwrap_or(serde_json::Value::Null);
            Some((id, props, f.geometry?.value))
        })
        .collect())
}

/// A path: VCS points in order, from lon/lat positions (finite, in range, at least 2).
fn path_of(positions: &[Vec<f64>]) -> CoreResult<Vec<(u32, u32)>> {
    if positions.len() < 2 {
        return Err(CoreError::out_of_range(
            "path",
            format!("must have at least 2 positions, got {}", positions.len()),
        ));
    }
    if positions.len() > MAX_VERTICES {
        return Err(CoreError::TooLarge {
            detail: format!("path has more than {MAX_VERTICES} positions"),
        });
    }
    let mut path: Vec<(u32, u32)> = positions
        .iter()
        .map(|p| match p.as_slice() {
            [lon, lat, ..] => Ok((lon_to_vcs(*lon)? as u32, lat_to_vcs(*lat)? as u32)),
            _ => Err(CoreError::out_of_range(
                "path",
                "positions must have at least two numbers",
            )),
        })
        .collect::<CoreResult<_>>()?;
    // Joined arcs repeat their joints; a repeated point adds nothing to a path.
    path.dedup();
    Ok(path)
}

/// The geometry of a GeoJSON geometry or Feature; errors name `what` was being read.
fn geojson_geometry(value: &serde_json::Value, what: &'static str) -> CoreResult<geojson::Value> {
    let geometry = match value.get("type").and_then(|t| t.as_str()) {
        Some("Feature") => value
            .get("geometry")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
        _ => value.clone(),
    };
    geojson::Geometry::from_json_value(geometry)
        .map(|g| g.value)
        .map_err(|e| CoreError::out_of_range(what, format!("GeoJSON is not valid: {e}")))
}

/// The paths of a GeoJSON LineString or MultiLineString (or a Feature of one).
pub fn paths_from_geojson(value: &serde_json::Value) -> CoreResult<Vec<Vec<(u32, u32)>>> {
    paths_of_value(&geojson_geometry(value, "path")?)
}

fn paths_of_value(v: &geojson::Value) -> CoreResult<Vec<Vec<(u32, u32)>>> {
    match v {
        geojson::Value::LineString(line) => Ok(vec![path_of(line)?]),
        geojson::Value::MultiLineString(lines) => lines.iter().map(|l| path_of(l)).collect(),
        _ => Err(CoreError::out_of_range(
            "path",
            "must be a LineString or a MultiLineString",
        )),
    }
}

/// The line features of a TopoJSON object: (id, properties, path), one row per line part.
pub fn paths_from_topojson(text: &str, object: &str) -> CoreResult<Vec<Feature<Path>>> {
    let mut out = Vec::new();
    for (id, props, g) in topojson_features(text, object)? {
        if let geojson::Value::LineString(_) | geojson::Value::MultiLineString(_) = g {
            for path in paths_of_value(&g)? {
                out.push((id.clone(), props.clone(), path));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn square(x0: f64, y0: f64, d: f64) -> serde_json::Value {
        json!({"type": "Polygon", "coordinates": [[[x0, y0], [x0 + d, y0], [x0 + d, y0 + d], [x0, y0 + d], [x0, y0]]]})
    }

    #[test]
    fn geojson_and_wkb_agree_and_round_trip() {
        let mp = MultiPolygon::from_geojson(&square(-90.0, 30.0, 1.0)).unwrap();
        assert_eq!((mp.polygons.len(), mp.vertices()), (1, 5));
        // The same square as little-endian WKB.
        let mut wkb = vec![1u8, 3, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0];
        for (x, y) in [
            (-90.0f64, 30.0f64),
            (-89.0, 30.0),
            (-89.0, 31.0),
            (-90.0, 31.0),
            (-90.0, 30.0),
        ] {
            wkb.extend_from_slice(&x.to_le_bytes());
            wkb.extend_from_slice(&y.to_le_bytes());
        }
        assert_eq!(MultiPolygon::from_wkb(&wkb).unwrap(), mp);
        assert_eq!(MultiPolygon::from_bytes(&mp.to_bytes()).unwrap(), mp);
        assert_eq!(MultiPolygon::from_geojson(&mp.to_geojson()).unwrap(), mp);
        let feature =
            json!({"type": "Feature", "properties": {}, "geometry": square(-90.0, 30.0, 1.0)});
        assert_eq!(MultiPolygon::from_geojson(&feature).unwrap(), mp);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let unclosed =
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]});
        let short = json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]});
        let point = json!({"type": "Point", "coordinates": [0, 0]});
        let valid =
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]});
        for (bad, what) in [
            (unclosed, "closed"),
            (short, "at least 4"),
            (point, "Polygon"),
        ] {
            let err = MultiPolygon::from_geojson(&bad).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        }
        assert!(MultiPolygon::from_geojson(&valid).is_ok());
        assert!(MultiPolygon::from_geojson(&square(200.0, 0.0, 1.0)).is_err());
        assert!(MultiPolygon::from_wkb(&[1, 3, 0]).is_err());
        let mut wkb_nan = vec![1u8, 3, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0];
        for v in [f64::NAN, 0.0, 1.0, 0.0, 1.0, 1.0, f64::NAN, 0.0] {
            wkb_nan.extend_from_slice(&v.to_le_bytes());
        }
        assert!(MultiPolygon::from_wkb(&wkb_nan).is_err());
        assert!(MultiPolygon::from_bytes(b"VTPG\x01\x00\x00\x00").is_err());
        // Stored bytes with a ring whose last point moved off its first: refused.
        let mut open = MultiPolygon::from_geojson(&valid).unwrap().to_bytes();
        assert!(MultiPolygon::from_bytes(&open).is_ok());
        let n = open.len();
        open[n - 8] ^= 0x10;
        assert!(MultiPolygon::from_bytes(&open).is_err());
        assert!(MultiPolygon::from_topojson("{}", "x").is_err());
    }

    #[test]
    fn malformed_topojson_is_an_error_not_a_panic() {
        let topo = |arcs: &str, geometry: &str, transform: &str| {
            format!(
                r#"{{"type": "Topology", {transform} "arcs": {arcs},
                   "objects": {{"o": {geometry}}}}}"#
            )
        };
        let square = "[[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]";
        let bad = [
            // Arc indexes out of range, either way, and beyond i32.
            topo(square, r#"{"type": "Polygon", "arcs": [[1]]}"#, ""),
            topo(square, r#"{"type": "Polygon", "arcs": [[-2]]}"#, ""),
            topo(
                square,
                r#"{"type": "Polygon", "arcs": [[-2147483648]]}"#,
                "",
            ),
            topo(square, r#"{"type": "Polygon", "arcs": [[4294967296]]}"#, ""),
            topo(
                square,
                r#"{"type": "MultiPolygon", "arcs": [[[0]], [[7]]]}"#,
                "",
            ),
            topo(square, r#"{"type": "LineString", "arcs": [0, 3]}"#, ""),
            topo("[]", r#"{"type": "MultiLineString", "arcs": [[0]]}"#, ""),
            // Positions of one number.
            topo("[[[0], [1]]]", r#"{"type": "LineString", "arcs": [0]}"#, ""),
            topo("[]", r#"{"type": "Point", "coordinates": [1]}"#, ""),
            topo(
                "[]",
                r#"{"type": "MultiPoint", "coordinates": [[1, 2], [3]]}"#,
                "",
            ),
            // A transform of one number.
            topo(
                square,
                r#"{"type": "Polygon", "arcs": [[0]]}"#,
                r#""transform": {"scale": [1], "translate": [0, 0]},"#,
            ),
            topo(
                square,
                r#"{"type": "Polygon", "arcs": [[0]]}"#,
                r#""transform": {"scale": [1, 1], "translate": []},"#,
            ),
            // Nested collections.
            topo(
                square,
                r#"{"type": "GeometryCollection", "geometries": [{"type": "GeometryCollection", "geometries": []}]}"#,
                "",
            ),
            // Not JSON, not an object.
            "{".to_string(),
            "[1]".to_string(),
        ];
        for text in &bad {
            let polygons = MultiPolygon::from_topojson(text, "o");
            let paths = paths_from_topojson(text, "o");
            assert!(polygons.is_err() && paths.is_err(), "{text}");
            assert!(
                matches!(polygons, Err(CoreError::OutOfRange { .. })),
                "{text}"
            );
        }
        let err = MultiPolygon::from_topojson(&bad[0], "o")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("topojson arc index 1 is out of range"),
            "{err}"
        );
        // One arc referenced over and over must not expand without bound.
        let arc: Vec<String> = (0..1000).map(|i| format!("[{}, 0]", i % 90)).collect();
        let refs = vec!["0"; MAX_TOPOJSON_POSITIONS / 1000 + 1].join(",");
        let huge = topo(
            &format!("[[{}]]", arc.join(",")),
            &format!(r#"{{"type": "LineString", "arcs": [{refs}]}}"#),
            "",
        );
        assert!(matches!(
            paths_from_topojson(&huge, "o"),
            Err(CoreError::TooLarge { .. })
        ));
    }

    #[test]
    fn topojson_objects_become_features() {
        // Two unit squares sharing an edge, as one topology with shared arc 0.
        let topo = r#"{"type": "Topology",
          "arcs": [[[1, 0], [1, 1]], [[1, 1], [0, 1], [0, 0], [1, 0]], [[1, 0], [2, 0], [2, 1], [1, 1]]],
          "objects": {"squares": {"type": "GeometryCollection", "geometries": [
            {"type": "Polygon", "id": "A", "properties": {"name": "left"}, "arcs": [[0, 1]]},
            {"type": "Polygon", "id": 7, "arcs": [[2, -1]]}]}}}"#;
        let features = MultiPolygon::from_topojson(topo, "squares").unwrap();
        assert_eq!(features.len(), 2);
        assert_eq!(features[0].0.as_deref(), Some("A"));
        assert_eq!(features[1].0.as_deref(), Some("7"));
        assert_eq!(features[0].1["name"], "left");
        assert!(features.iter().all(|f| f.2.vertices() >= 5));
        assert!(MultiPolygon::from_topojson(topo, "nope").is_err());
        // The same arcs read as lines.
        let lines = r#"{"type": "Topology", "arcs": [[[0, 0], [3, 4]], [[3, 4], [6, 0]]],
          "objects": {"l": {"type": "GeometryCollection", "geometries": [
            {"type": "LineString", "id": "a", "arcs": [0, 1]},
            {"type": "MultiLineString", "arcs": [[0], [1]]}]}}}"#;
        let paths = paths_from_topojson(lines, "l").unwrap();
        assert_eq!(
            paths.iter().map(|p| p.2.len()).collect::<Vec<_>>(),
            vec![3, 2, 2]
        );
        assert!(
            paths_from_geojson(&json!({"type": "LineString", "coordinates": [[0, 0]]})).is_err()
        );
        assert_eq!(
            paths_from_geojson(&json!({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}))
                .unwrap()[0]
                .len(),
            2
        );
    }
}
