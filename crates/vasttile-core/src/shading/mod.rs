//! Shading: values per pixel to colours. Heat normalisation and colormaps ([`shade`]),
//! choropleth mappings ([`choropleth`]) and legends of both ([`legend`]).
pub mod choropleth;
pub mod legend;
pub mod shade;
