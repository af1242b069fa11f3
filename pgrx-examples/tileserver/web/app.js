// The vasttile demo map: every layer the tile server lists, one shown at a time, restyled by
// query parameters (colormap, normalisation) that the layer functions take, with the legend the
// extension draws for the same style, over a basemap drawn by vasttile too (layers named
// basemap_*: the world's countries). No network access beyond the tile server.
"use strict";

// Where each demo layer is worth looking at; other layers open on the whole world. Whole zooms:
// then each 256-px tile shows pixel for pixel (at fractional zooms the browser resamples tiles,
// and one-pixel dots alias differently from tile to tile).
const VIEWS = {
  zip_dots: { center: [-96, 38], zoom: 3 },
  zip_heat: { center: [-96, 38], zoom: 3 },
  zip_access: { center: [-73.95, 40.72], zoom: 11 },
  counties_unemployment: { center: [-96, 38], zoom: 3 },
  activities_heat: { center: [-0.1, 51.5], zoom: 12 },
  tube_heat: { center: [-0.12, 51.51], zoom: 11 },
};
const HEAT_KINDS = ["heat", "heat_pyramid", "access"];

const params = new URLSearchParams(location.search);
const status = document.getElementById("status");
const map = new maplibregl.Map({
  container: "map",
  style: { version: 8, sources: {}, layers: [{ id: "bg", type: "background", paint: { "background-color": "#f4f4f0" } }] },
  center: [0, 20],
  zoom: 1,
  attributionControl: false,
});
map.addControl(new maplibregl.NavigationControl(), "top-right");

let layers = [];
let current = null;

// Basemap layers go under whichever layer is shown and stay out of the switcher.
function addBasemaps(list) {
  // Areas (choropleths) first, lines over them.
  const order = (l) => (l.kind === "choropleth" ? 0 : 1);
  for (const b of list.filter((l) => l.id.startsWith("basemap_")).sort((a, b) => order(a) - order(b))) {
    const url = `${location.origin}/${b.id}/{z}/{x}/{y}.png`;
    map.addSource(b.id, { type: "raster", tiles: [url], tileSize: 256, maxzoom: 22 });
    map.addLayer({ id: b.id, type: "raster", source: b.id, paint: { "raster-fade-duration": 0 } });
  }
}

function look() {
  const q = new URLSearchParams();
  if (HEAT_KINDS.includes(current.kind)) {
    for (const id of ["colormap", "normalize"]) {
      const v = document.getElementById(id).value;
      if (v) q.set(id, v);
    }
  }
  return q.toString();
}

function show() {
  const q = look();
  const retina = current.retina && window.devicePixelRatio > 1 ? "@2x" : "";
  const url = `${location.origin}/${current.id}/{z}/{x}/{y}${retina}.png${q ? "?" + q : ""}`;
  if (map.getLayer("tiles")) map.removeLayer("tiles");
  if (map.getSource("tiles")) map.removeSource("tiles");
  map.addSource("tiles", { type: "raster", tiles: [url], tileSize: 256, maxzoom: 22 });
  map.addLayer({ id: "tiles", type: "raster", source: "tiles", paint: { "raster-fade-duration": 0 } });
  document.getElementById("legend").src = `/legend/${current.id}${q ? "?" + q : ""}`;
  document.getElementById("legend-title").textContent = `${current.id} (${current.kind || "layer"})`;
  document.querySelector(".scale").style.visibility = current.kind === "dots" ? "hidden" : "visible";
  for (const id of ["colormap", "normalize"]) document.getElementById(id).disabled = !HEAT_KINDS.includes(current.kind);
  const u = new URL(location.href);
  u.searchParams.set("layer", current.id);
  history.replaceState(null, "", u);
}

function select(id, fly) {
  current = layers.find((l) => l.id === id) || layers[0];
  document.querySelector(`input[value="${current.id}"]`).checked = true;
  if (fly) map.jumpTo(VIEWS[current.id] || { center: [0, 20], zoom: 1 });
  show();
}

fetch("/index.json")
  .then((r) => r.json())
  .then((list) => {
    layers = list.filter((l) => !l.id.startsWith("basemap_"));
    const box = document.getElementById("layers");
    for (const l of layers) {
      const label = document.createElement("label");
      label.innerHTML = `<input type="radio" name="layer" value="${l.id}"> ${l.id} <span class="hint">${l.kind || ""}</span>`;
      label.querySelector("input").addEventListener("change", () => select(l.id, true));
      box.appendChild(label);
    }
    for (const id of ["colormap", "normalize"]) {
      if (params.get(id)) document.getElementById(id).value = params.get(id);
      document.getElementById(id).addEventListener("change", show);
    }
    const start = () => {
      addBasemaps(list);
      select(params.get("layer") || layers[0].id, true);
    };
    if (map.loaded()) start(); else map.once("load", start);
  })
  .catch((e) => { status.textContent = `cannot list layers: ${e}`; });

// For the headless-browser test: true once the map has drawn every tile it asked for.
window.vasttileIdle = false;
map.on("dataloading", () => { window.vasttileIdle = false; });
map.on("idle", () => { window.vasttileIdle = !!current; status.textContent = current ? `${current.id}: all tiles loaded` : ""; });
