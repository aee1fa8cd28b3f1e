//! Flow graphs: the typed model, the .fbp and JSON parsers and serializers, validation.
//!
//! The .fbp dialect is exactly the one npm `fbp` 1.8.0 reads (msgflo's parser), and
//! [`Graph::to_json`] prints what `fbp FILE.fbp` prints. Everything here is pure: no I/O.
//!
//! ```
//! # use wasmflo_host::graph::{parse_fbp, ParseOptions};
//! let graph = parse_fbp("'5' -> IN a(Repeat) OUT -> IN b(Print)", &ParseOptions::default()).unwrap();
//! assert_eq!(graph.processes["a"].component, "Repeat");
//! assert_eq!(graph.connections.len(), 2);
//! ```

mod fbp;
mod json;
mod model;
mod picture;
mod serialize;
mod validate;

#[cfg(test)]
mod tests;

use thiserror::Error;

pub use fbp::{ParseError, parse_fbp};
pub use json::{JsonError, JsonErrorKind, parse_json};
pub use model::{
    Connection, Edge, Export, Format, Graph, Group, Iip, Metadata, ParseOptions, PortRef, Process,
};
pub use validate::{ValidationError, validate};

/// Any failure to turn source text into a valid graph. Each variant shows as its inner
/// error, which already says where (line and column, or the node): callers put the
/// file name in front.
#[derive(Debug, Error)]
pub enum GraphError {
    /// The .fbp source is not valid syntax.
    #[error(transparent)]
    Fbp(#[from] ParseError),
    /// The JSON source is not a JSON graph.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The graph parsed but is inconsistent.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// Parses a graph in the given format and validates it. `opts` applies to .fbp only
/// (a JSON graph carries its own `caseSensitive`).
pub fn parse(src: &str, format: Format, opts: &ParseOptions) -> Result<Graph, GraphError> {
    let graph = match format {
        Format::Fbp => parse_fbp(src, opts)?,
        Format::Json => parse_json(src)?,
    };
    validate(&graph)?;
    Ok(graph)
}
